// README code blocks for the tests that keep them true: a block is marked by the HTML comment
// `<!-- snippet: NAME … -->` on the line above its fence.
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

export const README = readFileSync(fileURLToPath(new URL("../../README.md", import.meta.url)), "utf8");

/** The body of the fenced block right below `<!-- snippet: name`; throws when there is none. */
export function readmeSnippet(name: string): { lang: string; code: string } {
  const re = new RegExp(`<!-- snippet: ${name}[ \\-][^\\n]*\\n\`\`\`(\\w*)\\n([\\s\\S]*?)\\n\`\`\`\\n`, "g");
  const found = [...README.matchAll(re)];
  if (found.length !== 1) throw new Error(`README.md: ${found.length} blocks marked "snippet: ${name}" (want 1)`);
  return { lang: found[0]![1]!, code: `${found[0]![2]!}\n` };
}
