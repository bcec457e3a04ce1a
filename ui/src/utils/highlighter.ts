// The code highlighter itself: lowlight with highlight.js's common grammars
// (about 37 languages). Loaded on demand by ./highlight.ts, so its chunk is
// fetched only when a message with a code block is on screen.
import { common, createLowlight } from 'lowlight'
import type { ElementContent, Root } from 'hast'

/** A run of code text with the highlight.js classes that apply to it. */
export interface CodePart {
  text: string
  classes: string
}

const lowlight = createLowlight(common)

function flatten(nodes: ElementContent[], classes: string, out: CodePart[]): void {
  for (const n of nodes) {
    if (n.type === 'text') {
      out.push({ text: n.value, classes })
    } else if (n.type === 'element') {
      const own = n.properties.className
      const list = Array.isArray(own) ? own.join(' ') : typeof own === 'string' ? own : ''
      flatten(n.children, [classes, list].filter(Boolean).join(' '), out)
    }
  }
}

/**
 * `code` split into classed runs for `lang` (a highlight.js name or alias),
 * or null when the language is unknown. The hast tree lowlight returns is
 * flattened to text runs; no HTML is made.
 */
export function highlightCode(code: string, lang: string): CodePart[] | null {
  if (!lang || !lowlight.registered(lang)) return null
  const tree: Root = lowlight.highlight(lang, code)
  const out: CodePart[] = []
  flatten(tree.children as ElementContent[], '', out)
  return out
}
