// One line for a message in lists, quotes and the pinned bar, with the
// "message recalled" wording of the user's language and mentions shown by
// display name (`@Bob Stone`, not the stored `@bob`); a call record as its
// words ("Missed call", "Outgoing call · 3:12"). At most 300 characters.
import { useI18n } from 'vue-i18n'
import type { MessageView } from '../types/model'
import { useProfilesStore } from '../stores/profiles'
import { useSessionStore } from '../stores/session'
import { callBodyOf, callWords } from '../utils/callRecord'
import { mentionsOf, splitMentions } from '../utils/mentions'
import { clip, previewOf } from '../utils/text'

/** The longest preview (a row shows far less; a 1 MB line was laid out whole). */
const MAX_PREVIEW = 300

export function usePreview(): (m: MessageView) => string {
  const { t } = useI18n()
  const profiles = useProfilesStore()
  const session = useSessionStore()
  return (m) => {
    if (m.recalled) return t('msg.recalledPreview')
    const call = callBodyOf(m)
    if (call) {
      const w = callWords(call, m.from === session.me)
      return t(w.key, w.params)
    }
    const line = clip(previewOf(m), MAX_PREVIEW)
    const mentions = m.kind === 'text' ? mentionsOf(m.body) : []
    if (mentions.length === 0) return line
    return splitMentions(line, mentions)
      .map((p) => (p.kind === 'mention' ? `@${profiles.nameOf(p.user)}` : p.text))
      .join('')
  }
}
