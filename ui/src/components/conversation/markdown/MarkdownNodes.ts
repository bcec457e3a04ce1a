// Renders a message's formatting tree (utils/markdown.ts) as Vue elements
// and text nodes, recursively. Every string becomes a text node; links open
// through the UI store's safe opener; mentions are marked, the user's own
// more strongly.
import { defineComponent, h } from 'vue'
import type { PropType, VNodeChild } from 'vue'
import type { MdNode } from '../../../utils/markdown'
import { isOpenableLink } from '../../../utils/markdown'
import { useUiStore } from '../../../stores/ui'
import { emojiRuns } from '../../../utils/emoji'
import { useProfilesStore } from '../../../stores/profiles'
import { useSessionStore } from '../../../stores/session'
import CodeBlock from './CodeBlock.vue'
import SpoilerText from './SpoilerText.vue'

const MENTION = 'rounded px-0.5 font-semibold box-decoration-clone'
const MENTION_ME = 'bg-amber-200 text-amber-950 dark:bg-amber-400/35 dark:text-amber-50'
const MENTION_OTHER = 'bg-brand-500/12 text-brand-700 dark:bg-brand-400/15 dark:text-brand-200'
const LINK = 'focus-ring rounded-sm underline decoration-1 underline-offset-2 opacity-95 hover:opacity-100'
const BLOCK = 'my-1 first:mt-0 last:mb-0'

/** Text, with its emoji runs in the colour emoji fonts (see emojiRuns). */
function textWithEmoji(text: string): VNodeChild {
  const runs = emojiRuns(text)
  if (!runs.some((r) => r.emoji)) return text
  return runs.map((r) => (r.emoji ? h('span', { class: 'font-emoji', 'data-emoji': '' }, r.text) : r.text))
}

export default defineComponent({
  name: 'MarkdownNodes',
  props: { nodes: { type: Array as PropType<MdNode[]>, required: true } },
  setup(props) {
    const ui = useUiStore()
    const profiles = useProfilesStore()
    const session = useSessionStore()

    const open = (e: MouseEvent, href: string) => {
      e.preventDefault()
      void ui.openExternal(href)
    }

    const render = (nodes: MdNode[]): VNodeChild[] => nodes.map(one)
    const one = (n: MdNode): VNodeChild => {
      switch (n.type) {
        case 'text':
          return textWithEmoji(n.text)
        case 'plain':
          return n.text
        case 'br':
          return '\n'
        case 'mention': {
          const me = n.user === session.me
          return h('span', {
            class: [MENTION, me ? MENTION_ME : MENTION_OTHER],
            title: n.text,
            'data-mention': n.user,
            'data-me': me || undefined,
            'data-testid': 'mention',
          }, `@${profiles.nameOf(n.user)}`)
        }
        case 'code':
          return h('code', { class: 'rounded bg-ink-900/8 px-1 py-px font-mono text-[0.88em] dark:bg-white/10' }, n.text)
        case 'pre':
          return h(CodeBlock, { code: n.text, lang: n.lang, class: BLOCK })
        case 'link':
          if (!isOpenableLink(n.href)) return render(n.children)
          return h('a', {
            href: n.href,
            target: '_blank',
            rel: 'noopener noreferrer',
            class: LINK,
            onClick: (e: MouseEvent) => open(e, n.href),
          }, render(n.children))
        case 'strong':
          return h('strong', { class: 'font-semibold' }, render(n.children))
        case 'em':
          return h('em', render(n.children))
        case 's':
          return h('s', render(n.children))
        case 'spoiler':
          return h(SpoilerText, null, () => render(n.children))
        case 'p':
          return h('p', { class: BLOCK }, render(n.children))
        case 'blockquote':
          return h('blockquote', { class: `${BLOCK} border-l-3 border-ink-300 pl-2.5 text-ink-700 dark:border-ink-500 dark:text-ink-200` }, render(n.children))
        case 'ul':
          return h('ul', { class: `${BLOCK} list-disc pl-5` }, render(n.children))
        case 'ol':
          return h('ol', { class: `${BLOCK} list-decimal pl-6`, start: n.start === 1 ? undefined : n.start }, render(n.children))
        case 'li':
          return h('li', { class: 'whitespace-pre-wrap' }, render(n.children))
      }
    }

    return () => render(props.nodes)
  },
})
