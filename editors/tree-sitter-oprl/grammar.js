/**
 * tree-sitter grammar for oprl recipes. It mirrors `grammar/oprl.pest` (the single source of
 * syntax) and is just as permissive: a block is any `kind [variant] { ... }` and a value is any
 * expression, so that editors highlight a recipe the same way whatever the checker thinks of it.
 * The keyword tokens (`use`, `true`, `false`) must equal `oprl::syntax::KEYWORDS`; a cargo test
 * (tests/editors.rs) checks that, and the block kinds and functions in queries/highlights.scm.
 */

const IDENT = /[A-Za-z_][A-Za-z0-9_]*/;
const DIGITS = /[0-9][0-9_]*/;

const PREC = {
  additive: 1,
  multiplicative: 2,
  unary: 3,
};

module.exports = grammar({
  name: 'oprl',

  extras: $ => [/\s/, $.comment],

  word: $ => $.identifier,

  conflicts: $ => [
    // `x y { ... }` is a block value, while `x` followed by a new statement `y = ...` is a
    // reference: only the token after `y` tells them apart, as in the PEG's ordered choice.
    [$.path, $.block_value],
  ],

  rules: {
    source_file: $ => repeat($._statement),

    _statement: $ => choice($.use_declaration, $.definition, $.block, $.assignment),

    // `use std::presets::oprl_rloo` or `use "../sokoban.oprl"`.
    use_declaration: $ => seq('use', field('target', choice($.module_path, $.string))),

    module_path: $ => seq($.identifier, repeat1(seq(token.immediate('::'), $.identifier))),

    // `reward outcome = verifier(env.won)`.
    definition: $ => seq(
      field('kind', $.identifier),
      field('name', $.identifier),
      '=',
      field('value', $._expression),
    ),

    // `env sokoban { ... }`.
    block: $ => seq(
      field('kind', $.identifier),
      optional(field('variant', $.identifier)),
      field('body', $.block_body),
    ),

    // Commas and semicolons between statements are optional.
    block_body: $ => seq('{', repeat(seq($._statement, optional(choice(',', ';')))), '}'),

    // `key = value`.
    assignment: $ => seq(field('key', $.identifier), '=', field('value', $._expression)),

    _expression: $ => choice($.binary_expression, $.unary_expression, $._primary),

    binary_expression: $ => choice(
      ...[['+', PREC.additive], ['-', PREC.additive], ['*', PREC.multiplicative], ['/', PREC.multiplicative]]
        .map(([op, p]) => prec.left(p, seq(
          field('left', $._expression),
          field('operator', op),
          field('right', $._expression),
        ))),
    ),

    unary_expression: $ => prec(PREC.unary, seq(field('operator', '-'), field('operand', $._expression))),

    _primary: $ => choice(
      $.float,
      $.integer,
      $.string,
      $.boolean,
      $.list,
      $.block_value,
      $.call,
      $.path,
      $.parenthesized_expression,
    ),

    parenthesized_expression: $ => seq('(', $._expression, ')'),

    // `0.2`, `3e-4`, `1.5E+2`.
    float: _ => token(seq(DIGITS, choice(
      seq('.', DIGITS, optional(seq(/[eE]/, optional(/[+-]/), DIGITS))),
      seq(/[eE]/, optional(/[+-]/), DIGITS),
    ))),

    // `128`, `1_000`.
    integer: _ => token(DIGITS),

    string: $ => seq(
      '"',
      repeat(choice($.string_content, $.escape_sequence)),
      token.immediate('"'),
    ),

    // Higher lexical precedence than a comment, so `#` inside a string is text.
    string_content: _ => token.immediate(prec(1, /[^"\\\n]+/)),

    escape_sequence: _ => token.immediate(/\\[^\n]/),

    boolean: _ => choice('true', 'false'),

    list: $ => seq('[', optional(seq(commaSep1($._expression), optional(','))), ']'),

    // `judge { rubric = sotopia }` used as a value.
    block_value: $ => seq(
      field('kind', $.identifier),
      optional(field('variant', $.identifier)),
      field('body', $.block_body),
    ),

    // `episode(outcome, norm = zscore)`.
    call: $ => seq(
      field('function', alias($.path, $.callee)),
      field('arguments', $.arguments),
    ),

    arguments: $ => seq(
      '(',
      optional(seq(commaSep1(choice($.named_argument, $._expression)), optional(','))),
      ')',
    ),

    named_argument: $ => seq(field('name', $.identifier), '=', field('value', $._expression)),

    // `zscore`, `env.won`.
    path: $ => seq(
      field('root', $.identifier),
      repeat(seq(token.immediate('.'), field('member', $.identifier))),
    ),

    identifier: _ => IDENT,

    comment: _ => token(seq('#', /[^\n]*/)),
  },
});

function commaSep1(rule) {
  return seq(rule, repeat(seq(',', rule)));
}
