// One line for a message in lists, quotes and the pinned bar, with the
// "message recalled" wording of the user's language.
import { useI18n } from 'vue-i18n'
import type { MessageView } from '../types/model'
import { previewOf } from '../utils/text'

export function usePreview(): (m: MessageView) => string {
  const { t } = useI18n()
  return (m) => (m.recalled ? t('msg.recalledPreview') : previewOf(m))
}
