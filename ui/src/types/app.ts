// Types the desktop shell (src-tauri) owns rather than the client core: the
// account/connect configuration, the persisted app settings, what the server
// offers, and the IPC error. Generated from the Rust types into
// ../generated/bindings.ts; the defaults are the UI's own.
import type { Settings_Serialize } from '../generated/bindings'

export type {
  Account,
  CmdError_Serialize as TransportError,
  ConnectConfig,
  Language,
  ServerInfo_Serialize as ServerInfo,
  SkinTone,
  ThemeChoice,
} from '../generated/bindings'

/** App settings, persisted by the shell. */
export type Settings = Settings_Serialize

export const DEFAULT_SETTINGS: Settings = {
  notifications: true,
  do_not_disturb: false,
  muted: [],
  pinned: [],
  language: null,
  theme: 'system',
  close_to_tray: true,
  emoji_skin_tone: 'default',
  recent_emoji: [],
  call_devices: { mic: null, camera: null, speaker: null },
}
