/**
 * A small reader of our style sheets for tests: each rule with the at-rule it sits in
 * (`@media …`, or "" at the top), its selectors and its declarations. Enough for the
 * sheets in static/ (rules, `@media`, `@keyframes`); not a general CSS parser.
 * @module
 */

/** One style rule. */
export interface CssRule {
  /** The enclosing `@media …` prelude, or "" at the top level. */
  context: string;
  /** The selector list, each one normalized (single spaces). */
  selectors: string[];
  /** `[property, value]` pairs in order. */
  declarations: Array<[string, string]>;
}

const squash = (text: string) => text.replace(/\s+/g, " ").trim();

/** The rules of `css` (keyframes are skipped: their steps are not selectors). */
export function cssRules(css: string, context = ""): CssRule[] {
  const text = css.replace(/\/\*[\s\S]*?\*\//g, "");
  const rules: CssRule[] = [];
  let i = 0;
  while (i < text.length) {
    const open = text.indexOf("{", i);
    if (open === -1) break;
    const prelude = squash(text.slice(i, open));
    // The block's end: the brace that closes this one.
    let depth = 1;
    let end = open + 1;
    for (; end < text.length && depth > 0; end++) {
      if (text[end] === "{") depth++;
      else if (text[end] === "}") depth--;
    }
    const body = text.slice(open + 1, end - 1);
    if (prelude.startsWith("@media") || prelude.startsWith("@supports")) {
      rules.push(...cssRules(body, prelude));
    } else if (!prelude.startsWith("@")) {
      rules.push({
        context,
        selectors: prelude.split(",").map(squash),
        declarations: body.split(";").map(squash).filter(Boolean).map((d) => {
          const colon = d.indexOf(":");
          return [d.slice(0, colon).trim(), d.slice(colon + 1).trim()] as [string, string];
        }),
      });
    }
    i = end;
  }
  return rules;
}
