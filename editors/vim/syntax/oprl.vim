" Vim syntax for oprl recipes. It follows grammar/oprl.pest; the keywords, block kinds and
" function names here must equal the compiler's (tests/editors.rs checks them).
if exists('b:current_syntax')
  finish
endif

syn case match

syn keyword oprlKeyword use
syn keyword oprlBoolean true false

" `use std::presets::oprl_rloo`
syn match oprlModulePath "\<\h\w*\(::\h\w*\)\+" contains=oprlPathSep
syn match oprlPathSep "::" contained

" `key =` (the `=` of a named argument looks the same; both are names of values).
syn match oprlKey "\<\h\w*\ze\s*=[^=]"

" A block kind where it names a block (`env sokoban {`), a definition (`reward outcome =`) or a
" top-level item (`advantage =`), but not where it is a value (`step(prm)`).
syn match oprlBlockKind "\<\(env\|policy\|reward\|prm\|advantage\|algorithm\|train\|eval\|output\|sampling\|lora\|partner\|judge\)\>\ze\s*\(\h\w*\s*\)\={" nextgroup=oprlVariant skipwhite
syn match oprlBlockKind "^\s*\zs\<\(env\|policy\|reward\|prm\|advantage\|algorithm\|train\|eval\|output\|sampling\|lora\|partner\|judge\)\>\ze\s*\(\h\w*\s*\)\==" nextgroup=oprlDefinedName skipwhite
syn match oprlVariant "\h\w*\ze\s*{" contained
syn match oprlDefinedName "\h\w*\ze\s*=" contained

syn match oprlCall "\<\h\w*\ze\s*("
syn match oprlFunction "\<\(episode\|step\|token\|discounted\|verifier\)\>\ze\s*("

syn match oprlOperator "[-+*/=]"
syn match oprlInteger "\<\d[0-9_]*\>"
syn match oprlFloat "\<\d[0-9_]*\(\.\d[0-9_]*\([eE][+-]\=\d[0-9_]*\)\=\|[eE][+-]\=\d[0-9_]*\)\>"
syn region oprlString start=+"+ skip=+\\.+ end=+"+ end=+$+ contains=oprlEscape,oprlBadEscape oneline
syn match oprlBadEscape "\\." contained
syn match oprlEscape +\\["\\ntr0]+ contained
syn match oprlComment "#.*$" contains=oprlTodo
syn keyword oprlTodo TODO FIXME XXX NOTE contained

syn region oprlBlock start="{" end="}" transparent fold

hi def link oprlKeyword Include
hi def link oprlBoolean Boolean
hi def link oprlModulePath Identifier
hi def link oprlPathSep Delimiter
hi def link oprlBlockKind Keyword
hi def link oprlVariant Type
hi def link oprlDefinedName Identifier
hi def link oprlKey Identifier
hi def link oprlFunction Function
hi def link oprlCall Function
hi def link oprlOperator Operator
hi def link oprlFloat Float
hi def link oprlInteger Number
hi def link oprlString String
hi def link oprlEscape SpecialChar
hi def link oprlBadEscape Error
hi def link oprlComment Comment
hi def link oprlTodo Todo

let b:current_syntax = 'oprl'
