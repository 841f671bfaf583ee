"""Golden rendering: Handlebars as Mailgun renders it. The cases come from Mailgun's
template documentation (user-manual/templates/handlebars), from the helpers its engine
registers (mailgun/raymond helper.go and its tests: `equal`, `ifEq`, `ifGt`, `ifLt`,
`ifMatchesRegexStr`, `pluralize`, `length`), and from Handlebars.js semantics (escaping,
paths, data variables, block parameters, whitespace control and standalone lines) where
Mailgun's engine follows them; where it doesn't (truth, printing), Mailgun's way."""

from __future__ import annotations

import pytest

from mailhaven.messages.handlebars import (
    MAX_NESTING,
    MAX_OUTPUT,
    MAX_STEPS,
    TemplateError,
    compile_template,
    render,
)

SERVICES = {"user": {"services": [{"service": "Oil change", "date": "May 1"},
                                  {"service": "Tyres", "date": "May 9"}]}}

GOLDEN = [
    # -- Mailgun's documented examples ---------------------------------------------------
    ("docs: title and body", '<div class="entry"> <h1>{{title}}</h1> <div class="body"> '
     "{{body}} </div> </div>", {"title": "API Documentation", "body": "Template body"},
     '<div class="entry"> <h1>API Documentation</h1> <div class="body"> Template body '
     "</div> </div>"),
    ("docs: if / else if", "{{#if english}}\n<p>This text is in the English language.</p>\n"
     "{{else if spanish}}\n<p>Este texto está en idioma español.</p>\n{{else if french}}\n"
     "<p>Ce texte est en langue française.</p>\n{{/if}}\n", {"spanish": True},
     "<p>Este texto está en idioma español.</p>\n"),
    ("docs: unless", "{{#unless paid}}\n<h3 class=\"warning\">WARNING: past due</h3>\n"
     "{{/unless}}\n", {"paid": False}, '<h3 class="warning">WARNING: past due</h3>\n'),
    ("docs: each", "{{#each user.services}}\n<li>You scheduled {{this.service}} on "
     "{{this.date}}</li>\n{{/each}}\n", SERVICES,
     "<li>You scheduled Oil change on May 1</li>\n<li>You scheduled Tyres on May 9</li>\n"),
    ("docs: with", "{{#with user}}<p>{{firstName}} {{lastName}}</p>{{/with}}",
     {"user": {"firstName": "Ann", "lastName": "Lee"}}, "<p>Ann Lee</p>"),
    ("docs: equal", '{{#equal tier "gold"}}<p>Gold perks</p>{{/equal}}', {"tier": "gold"},
     "<p>Gold perks</p>"),
    # -- escaping, as Mailgun's engine escapes -------------------------------------------
    ("escaped by default", "{{x}}", {"x": "<b>Tom & \"Jerry's\"</b> `=`"},
     "&lt;b&gt;Tom &amp; &quot;Jerry&apos;s&quot;&lt;/b&gt; `=`"),
    ("triple braces are raw", "{{{x}}}", {"x": "<b>bold</b>"}, "<b>bold</b>"),
    ("ampersand is raw", "{{&x}}", {"x": "<i>"}, "<i>"),
    ("helper output is escaped", '{{pluralize 2 "<b>items</b>" "item"}}', {},
     "&lt;b&gt;items&lt;/b&gt;"),
    ("escaped mustache is text", "\\{{name}} is {{name}}", {"name": "x"}, "{{name}} is x"),
    ("an escaped backslash", "\\\\{{name}}", {"name": "x"}, "\\x"),
    # -- values, printed as Mailgun (Go) prints them -------------------------------------
    ("whole floats print as integers", "{{n}} {{f}} {{big}}", {"n": 10.0, "f": 1.5,
                                                                "big": 1e21},
     "10 1.5 1000000000000000000000"),
    ("booleans", "{{t}} {{f}}", {"t": True, "f": False}, "true false"),
    ("missing and null print nothing", "[{{nope}}][{{a.b.c}}][{{n}}]", {"n": None}, "[][][]"),
    ("lists print their items run together", "{{xs}}", {"xs": [1, "a", True]}, "1atrue"),
    ("an empty object is false", "{{#if m}}T{{else}}F{{/if}}", {"m": {}}, "F"),
    ("an empty list is false", "{{#if xs}}T{{else}}F{{/if}}", {"xs": []}, "F"),
    ("zero is false", "{{#if n}}T{{else}}F{{/if}} {{#with n}}T{{else}}F{{/with}}", {"n": 0},
     "F F"),
    ("includeZero", "{{#if n includeZero=true}}zero counts{{/if}}", {"n": 0}, "zero counts"),
    ("an empty string is false", "{{#unless s}}empty{{/unless}}", {"s": ""}, "empty"),
    # -- paths ------------------------------------------------------------------------------
    ("dotted and slashed paths", "{{a.b}} {{a/b}} {{this.a.b}} {{./a.b}}", {"a": {"b": "x"}},
     "x x x x"),
    ("list index segments", "{{xs.[1].n}} {{xs.0.n}}", {"xs": [{"n": "a"}, {"n": "b"}]},
     "b a"),
    ("literal segments", "{{[first name]}} {{'last name'}}",
     {"first name": "Ann", "last name": "Lee"}, "Ann Lee"),
    ("parent context", "{{#each xs}}{{../sep}}{{this}}{{/each}}", {"xs": [1, 2], "sep": "-"},
     "-1-2"),
    ("names not in the context are found in the enclosing one",
     "{{#each items}}{{title}}:{{shop}} {{/each}}",
     {"shop": "Acme", "items": [{"title": "a"}, {"title": "b", "shop": "Own"}]},
     "a:Acme b:Own "),
    ("a name found stops the search", "{{#with inner}}[{{a.missing}}]{{/with}}",
     {"a": {"missing": "outer"}, "inner": {"a": {}}}, "[]"),
    ("@root", "{{#each xs}}{{@root.title}}{{/each}}", {"xs": [1, 2], "title": "T"}, "TT"),
    # -- data variables and block parameters --------------------------------------------
    ("@index @first @last", "{{#each xs}}{{@index}}{{#if @first}}F{{/if}}"
     "{{#if @last}}L{{/if}} {{/each}}", {"xs": ["a", "b", "c"]}, "0F 1 2L "),
    ("@key over an object, in its order", "{{#each m}}{{@key}}={{this}};{{/each}}",
     {"m": {"b": 1, "a": 2}}, "b=1;a=2;"),
    ("nested @../index", "{{#each xs}}{{#each ../xs}}{{@../index}}{{@index}} {{/each}}"
     "{{/each}}", {"xs": [1, 2]}, "00 01 10 11 "),
    ("each with else", "{{#each xs}}x{{else}}none{{/each}}", {"xs": []}, "none"),
    ("each over something else renders nothing", "[{{#each s}}x{{/each}}]", {"s": "abc"},
     "[]"),
    ("block parameters", "{{#each xs as |item i|}}{{i}}:{{item}} {{/each}}",
     {"xs": ["a", "b"]}, "0:a 1:b "),
    ("with block parameter", "{{#with user as |u|}}{{u.name}}{{/with}}",
     {"user": {"name": "Ann"}}, "Ann"),
    # -- sections over values (mustache style) ---------------------------------------------
    ("a section over a list", "{{#xs}}<{{.}}>{{/xs}}", {"xs": ["a", "b"]}, "<a><b>"),
    ("a section over an object", "{{#person}}{{name}}{{/person}}", {"person": {"name": "N"}},
     "N"),
    ("an inverted section", "{{^xs}}none{{/xs}}", {"xs": []}, "none"),
    ("an inverted if", "{{^if ok}}not ok{{/if}}", {"ok": False}, "not ok"),
    ("{{^}} as else", "{{#if ok}}yes{{^}}no{{/if}}", {}, "no"),
    # -- Mailgun's helpers ----------------------------------------------------------------
    ("equal compares as text", '{{#equal n "1"}}same{{/equal}}', {"n": 1.0}, "same"),
    ("equal has no else", '{{#equal a "x"}}same{{else}}other{{/equal}}', {"a": "y"}, ""),
    ("ifEq on numbers and numeric text", "{{#ifEq a b}}eq{{/ifEq}} {{#ifEq a 5}}eq{{/ifEq}}",
     {"a": "5", "b": 5}, "eq eq"),
    ("ifGt", "{{#ifGt n 10}}big{{else}}small{{/ifGt}}", {"n": 11}, "big"),
    ("ifLt", "{{#ifLt n 10}}small{{else}}big{{/ifLt}}", {"n": "9.5"}, "small"),
    ("comparing what is no number takes the else", "{{#ifGt a b}}gt{{else}}nan{{/ifGt}}",
     {"a": "foo", "b": "bar"}, "nan"),
    ("true counts as 1", "{{#ifEq flag 1}}one{{/ifEq}}", {"flag": True}, "one"),
    ("ifMatchesRegexStr: pattern first", '{{#ifMatchesRegexStr "^\\d{3}-\\d{4}$" phone}}'
     "phone{{else}}no{{/ifMatchesRegexStr}}", {"phone": "555-1234"}, "phone"),
    ("ifMatchesRegexStr: a broken pattern takes the else",
     '{{#ifMatchesRegexStr "(" x}}m{{else}}broken{{/ifMatchesRegexStr}}', {"x": "("},
     "broken"),
    ("pluralize", '{{pluralize 1 "items" "item"}} {{pluralize 3 "items" "item"}} '
     '{{pluralize n "items" "item"}}', {"n": "x"}, "item items item"),
    ("length of a list, an object, a string",
     "{{xs.length}} {{m.length}} {{s.length}} {{#ifEq xs.length 2}}two{{/ifEq}}",
     {"xs": [1, 2], "m": {"a": 1, "b": 2, "c": 3}, "s": "abcd"}, "2 3 4 two"),
    ("lookup", "{{#each people}}{{.}} lives in {{lookup ../cities @index}}. {{/each}}",
     {"people": ["Ann", "Bob"], "cities": ["Oslo", "Rome"]},
     "Ann lives in Oslo. Bob lives in Rome. "),
    ("lookup gives text, escaped", "{{lookup m k}}", {"m": {"a": "<x>"}, "k": "a"},
     "&lt;x&gt;"),
    ("log writes nothing", '{{log "note"}}x', {}, "x"),
    ("sub-expressions", '{{#if (lookup m "k")}}found{{/if}}', {"m": {"k": "v"}}, "found"),
    ("a name that is no helper is read as a value", "{{name extra args}}", {"name": "N"},
     "N"),
    # -- whitespace control and standalone lines ----------------------------------------
    ("~ strips whitespace", " {{~name~}} ", {"name": "x"}, "x"),
    ("~ on blocks", " {{~#if a~}} yes {{~/if~}} ", {"a": 1}, "yes"),
    ("~ around else", "{{#if a~}} yes {{~else~}} no {{~/if}}", {}, "no"),
    ("standalone block lines vanish", "<ul>\n  {{#each xs}}\n  <li>{{this}}</li>\n"
     "  {{/each}}\n</ul>\n", {"xs": [1, 2]}, "<ul>\n  <li>1</li>\n  <li>2</li>\n</ul>\n"),
    ("standalone else and comment lines vanish", "{{! a comment }}\n{{#if a}}\nA\n{{else}}\n"
     "B\n{{/if}}\n", {}, "B\n"),
    ("comments", "a{{!-- {{not rendered}} --}}b{{! short }}c", {}, "abc"),
    ("inline blocks keep their spaces", " {{#if a}} x {{/if}} ", {"a": 1}, "  x  "),
]


@pytest.mark.parametrize(("template", "variables", "expected"),
                         [case[1:] for case in GOLDEN], ids=[case[0] for case in GOLDEN])
def test_mailguns_rendering(template: str, variables: dict, expected: str) -> None:
    assert render(template, variables) == expected


BROKEN = [
    ("{{#if a}}never closed", "{{#if}} is not closed (line 1)"),
    ("x\n{{/if}}", "{{/if}} closes no block (line 2)"),
    ("{{#if a}}{{/each}}", "{{/each}} closes {{#if}} (line 1)"),
    ("{{#if a}}{{else}}{{else}}{{/if}}", "{{else}} outside a block, or twice in one (line 1)"),
    ("{{name", "unclosed tag (line 1)"),
    ('{{name "open}}', "unterminated string (line 1)"),
    ("{{!-- never closed", "unterminated comment (line 1)"),
    ("{{> footer}}", "partials ({{> name}}) are not supported (line 1)"),
    ("{{#> footer}}x{{/footer}}", "decorators and partial blocks are not supported (line 1)"),
    ("{{{{raw}}}} {{x}} {{{{/raw}}}}", "raw blocks ({{{{raw}}}}) are not supported (line 1)"),
    ("{{a/../b}}", "invalid path 'a/../b' (line 1)"),
    ("{{#each}}x{{/each}}", "each takes 1 argument, not 0"),
    ('{{#ifEq a}}x{{/ifEq}}', "ifEq takes 2 arguments, not 1"),
    ('{{pluralize n "items"}}', "pluralize takes 3 arguments, not 2"),
    ("{{x a=1 b}}", "a positional argument after key=value arguments (line 1)"),
    ("{{#each xs as ||}}{{/each}}", "invalid block parameters (line 1)"),
    ("{{#if a}}" * (MAX_NESTING + 1) + "{{/if}}" * (MAX_NESTING + 1),
     f"blocks nested more than {MAX_NESTING} deep (line 1)"),
    ("{{x " + "(" * (MAX_NESTING + 1) + "y" + ")" * (MAX_NESTING + 1) + "}}",
     f"sub-expressions nested more than {MAX_NESTING} deep (line 1)"),
]


@pytest.mark.parametrize(("template", "why"), BROKEN)
def test_a_broken_template_is_refused_with_where_and_why(template: str, why: str) -> None:
    with pytest.raises(TemplateError) as refused:
        compile_template(template)
    assert str(refused.value) == why


def test_nesting_up_to_the_limit_renders() -> None:
    template = "{{#if a}}" * MAX_NESTING + "deep" + "{{/if}}" * MAX_NESTING
    assert render(template, {"a": True}) == "deep"


def test_a_render_that_would_not_end_is_stopped_by_its_step_budget() -> None:
    loops = ("{{#each a}}{{#each ../a}}{{#each ../../a}}{{#each ../../../a}}"
             "{{/each}}{{/each}}{{/each}}{{/each}}")
    with pytest.raises(TemplateError, match=f"more than {MAX_STEPS} steps"):
        render(loops, {"a": list(range(100))})  # 10^8 rounds, none writing anything


def test_a_render_that_would_fill_memory_is_stopped_by_its_output_budget() -> None:
    with pytest.raises(TemplateError, match=f"more than {MAX_OUTPUT} characters"):
        render("{{#each a}}{{#each ../a}}{{{../../big}}}{{/each}}{{/each}}",
               {"a": list(range(200)), "big": "x" * 10_000})


def test_deep_data_prints_without_recursing_without_end() -> None:
    deep: list = []
    inner = deep
    for _ in range(5000):
        inner.append([])
        inner = inner[0]
    assert render("[{{d}}]", {"d": deep}) == "[]"


def test_a_long_blank_run_is_read_in_linear_time() -> None:
    """A standalone line's test reads the blanks beside a tag: 100 KB of them once."""
    template = "\n" * 50_000 + "{{#if a}}" + " " * 50_000 + "{{/if}}"
    assert render(template, {"a": 1}) == "\n" * 50_000 + " " * 50_000


@pytest.mark.parametrize("block", [
    "{{#pluralize 2 @root.big 1}}{{/pluralize}}",
    "{{#lookup @root 'big'}}{{/lookup}}",
])
def test_a_value_a_block_helper_returns_counts_against_the_output_budget(block: str) -> None:
    with pytest.raises(TemplateError, match=f"more than {MAX_OUTPUT} characters"):
        render("{{#each l}}{{#each ../l}}" + block + "{{/each}}{{/each}}",
               {"l": [1] * 400, "big": "x" * 8000})


def test_a_block_helpers_program_is_counted_once() -> None:
    """Nested blocks pass their program's text up: counted where it is written, not again."""
    big = "x" * (MAX_OUTPUT // 2)
    template = "{{#if a}}" * 60 + "{{{big}}}" + "{{/if}}" * 60
    assert len(render(template, {"a": True, "big": big})) == len(big)


def test_sub_expressions_and_hash_arguments_are_steps() -> None:
    inner = "{{lookup o 'k' " + " ".join(f"a{i}=(lookup o 'k')" for i in range(4000)) + "}}"
    with pytest.raises(TemplateError, match=f"more than {MAX_STEPS} steps"):
        render("{{#each l}}" + inner + "{{/each}}", {"l": [1] * 300, "o": {"k": 1}})


def test_a_long_run_of_digits_is_read_as_a_number_or_not_in_one_pass() -> None:
    """Before, `\\d+\\.?\\d*` tried every split of the digits: this one took hours."""
    digits = "1" * 200_000
    assert render("{{#ifGt s 1}}y{{else}}n{{/ifGt}}", {"s": digits + "x"}) == "n"
    assert render("{{#ifGt s 1}}y{{else}}n{{/ifGt}}", {"s": digits + ".5"}) == "y"


@pytest.mark.parametrize("pattern", [
    "^(a+)+$", "(a*)*b", "(a|ab)*c", "(a?a)*$", "(?:x(a+))+", "(?=(a+)+)b", "(a)\\1",
])
def test_a_regex_python_could_backtrack_on_without_end_is_a_render_error(pattern: str) -> None:
    """Mailgun's RE2 never backtracks; Python's re does, exponentially on these."""
    with pytest.raises(TemplateError, match="can backtrack without end"):
        render("{{#ifMatchesRegexStr p s}}y{{else}}n{{/ifMatchesRegexStr}}",
               {"p": pattern, "s": "a" * 40 + "!"})


@pytest.mark.parametrize(("pattern", "expected"), [
    ("^[a-z]+@[a-z]+\\.com$", "y"), ("(?:ab)+", "n"), ("^(?:a|b)+!$", "y"), ("a{40}", "y"),
])
def test_a_regex_without_nested_repeats_matches(pattern: str, expected: str) -> None:
    assert render("{{#ifMatchesRegexStr p s}}y{{else}}n{{/ifMatchesRegexStr}}",
                  {"p": pattern, "s": "a" * 40 + "!" if "@" not in pattern
                   else "ann@example.com"}) == expected


def test_a_regex_is_matched_against_at_most_10000_characters() -> None:
    template = "{{#ifMatchesRegexStr 'b$' s}}y{{else}}n{{/ifMatchesRegexStr}}"
    assert render(template, {"s": "a" * 9_999 + "b"}) == "y"
    with pytest.raises(TemplateError, match="at most 10000 characters"):
        render(template, {"s": "a" * 10_000 + "b"})


def test_an_else_if_chain_is_no_nesting_however_long() -> None:
    """Each `{{else if}}` is its own block inside the last one's inverse: not nesting, so
    a chain longer than the nesting limit reads and renders (without recursing on it)."""
    links = 5000
    template = ("{{#if a0}}0" + "".join(f"{{{{else if a{i}}}}}{i}" for i in range(1, links))
                + "{{else}}none{{/if}}")
    assert render(template, {f"a{links - 1}": True}) == str(links - 1)
    assert render(template, {"a7": 1, "a9": 1}) == "7"
    assert render(template, {}) == "none"
    sections = "{{#a}}a" + "".join(f"{{{{else if b{i}}}}}{i}" for i in range(links)) + "{{/a}}"
    assert render(sections, {"b4999": [1]}) == "4999"


def test_blocks_inside_an_else_if_chain_still_count_as_nesting() -> None:
    inner = "{{#if a}}" * MAX_NESTING + "{{/if}}" * MAX_NESTING
    with pytest.raises(TemplateError, match=f"nested more than {MAX_NESTING} deep"):
        compile_template("{{#if x}}" + "{{else if y}}" * 100 + inner + "{{/if}}")
    compile_template("{{#if x}}" + "{{else if y}}" * 100 + inner[9:-7] + "{{/if}}")
