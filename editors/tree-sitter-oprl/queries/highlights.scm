; Highlights for oprl recipes, with capture names that Neovim and Helix both resolve (each
; falls back from `a.b.c` to `a.b` and `a`). Patterns never overlap, so the result does not
; depend on whether an editor lets the first or the last match win. The block kinds and
; function names below must equal the compiler's (tests/editors.rs checks them).

(comment) @comment

"use" @keyword.import

(module_path (identifier) @module)
(module_path "::" @punctuation.delimiter)

; Block kinds: `env sokoban { ... }`, `reward outcome = ...`, `advantage = ...`.
(block
  kind: (identifier) @keyword
  (#any-of? @keyword "env" "policy" "reward" "prm" "advantage" "algorithm" "train" "eval" "output" "sampling" "lora" "partner" "judge"))
(block
  kind: (identifier) @type
  (#not-any-of? @type "env" "policy" "reward" "prm" "advantage" "algorithm" "train" "eval" "output" "sampling" "lora" "partner" "judge"))
(block variant: (identifier) @type)

(block_value
  kind: (identifier) @keyword
  (#any-of? @keyword "env" "policy" "reward" "prm" "advantage" "algorithm" "train" "eval" "output" "sampling" "lora" "partner" "judge"))
(block_value
  kind: (identifier) @type
  (#not-any-of? @type "env" "policy" "reward" "prm" "advantage" "algorithm" "train" "eval" "output" "sampling" "lora" "partner" "judge"))
(block_value variant: (identifier) @type)

(definition
  kind: (identifier) @keyword
  (#any-of? @keyword "env" "policy" "reward" "prm" "advantage" "algorithm" "train" "eval" "output" "sampling" "lora" "partner" "judge"))
(definition
  kind: (identifier) @type
  (#not-any-of? @type "env" "policy" "reward" "prm" "advantage" "algorithm" "train" "eval" "output" "sampling" "lora" "partner" "judge"))
(definition name: (identifier) @variable)

(source_file
  (assignment
    key: (identifier) @keyword
    (#any-of? @keyword "env" "policy" "reward" "prm" "advantage" "algorithm" "train" "eval" "output" "sampling" "lora" "partner" "judge")))
(source_file
  (assignment
    key: (identifier) @variable.member
    (#not-any-of? @variable.member "env" "policy" "reward" "prm" "advantage" "algorithm" "train" "eval" "output" "sampling" "lora" "partner" "judge")))
(block_body (assignment key: (identifier) @variable.member))

; Calls: the functions of reward and advantage expressions are builtins.
(callee
  root: (identifier) @function.builtin
  (#any-of? @function.builtin "episode" "step" "token" "discounted" "verifier"))
(callee
  root: (identifier) @function
  (#not-any-of? @function "episode" "step" "token" "discounted" "verifier"))
(callee member: (identifier) @function)

(named_argument name: (identifier) @variable.parameter)

; References: `outcome`, `env.won`.
(path root: (identifier) @variable)
(path member: (identifier) @variable.member)

(string) @string
(escape_sequence) @string.escape
(integer) @constant.numeric.integer
(float) @constant.numeric.float
(boolean) @constant.builtin.boolean

["+" "-" "*" "/"] @operator
"=" @operator

["{" "}" "[" "]" "(" ")"] @punctuation.bracket
["," ";" "."] @punctuation.delimiter
