// Types the desktop shell (src-tauri) owns rather than the client core:
// the account/connect configuration and the persisted app settings.
// Field names are snake_case so a serde struct can mirror them unchanged.

/** How to reach a server (the sign-in screen's choice). */
export type ConnectConfig =
  | { mode: 'embedded' }
  | { mode: 'remote'; url: string; token: string }
  | { mode: 'dev'; url: string; user: string }

/** The signed-in account, or null on first run. */
export interface Account {
  user: string
  server: ConnectConfig
}

export type ThemeChoice = 'system' | 'light' | 'dark'
export type Language = 'en' | 'zh-CN'

/** App settings, persisted by the shell. */
export interface Settings {
  notifications: boolean
  do_not_disturb: boolean
  /** Conversation ids whose notifications are muted. */
  muted: string[]
  /** Conversation ids pinned to the top of the list. */
  pinned: string[]
  /** null: follow the OS language. */
  language: Language | null
  theme: ThemeChoice
  close_to_tray: boolean
}

export const DEFAULT_SETTINGS: Settings = {
  notifications: true,
  do_not_disturb: false,
  muted: [],
  pinned: [],
  language: null,
  theme: 'system',
  close_to_tray: true,
}

/** An error crossing the IPC boundary (style §5: `{code, message}`). */
export interface TransportError {
  code: string
  message: string
  /** With `limit_reached`: which cap the server applied (protocol v1.2). */
  limit?: string
}

/**
 * What the server this session talks to supports (command `server_info`),
 * from its `hello` ok. Without feature `v1.1` the UI hides edits, recalls,
 * reactions, pins and forwarding. A window of null means none announced.
 */
export interface ServerInfo {
  features: string[]
  /** Seconds after a message's `ts` during which its sender may edit it. */
  edit_window_s: number | null
  /** Seconds after a message's `ts` during which its sender may recall it. */
  recall_window_s: number | null
}
