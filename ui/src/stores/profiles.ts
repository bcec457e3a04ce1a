// Profiles (name, avatar preset, status line) and presence of other users.
import { defineStore } from 'pinia'
import { reactive } from 'vue'
import type { Presence, Profile } from '../types/protocol'
import { useTransport } from '../services/transport'
import { plainName } from '../utils/text'

export const useProfilesStore = defineStore('profiles', () => {
  const profiles = reactive(new Map<string, Profile>())
  const presence = reactive(new Map<string, Presence>())
  const watched = new Set<string>()
  const requested = new Set<string>()

  /** Fetches profiles not fetched yet (one batched call). */
  async function ensure(users: string[]): Promise<void> {
    const missing = [...new Set(users)].filter((u) => u && !requested.has(u))
    if (missing.length === 0) return
    for (const u of missing) requested.add(u)
    try {
      for (const p of await useTransport().profiles(missing)) profiles.set(p.user, p)
    } catch {
      for (const u of missing) requested.delete(u)
    }
  }

  /** Starts watching presence of users (DM peers, channel members). */
  async function watch(users: string[]): Promise<void> {
    const fresh = [...new Set(users)].filter((u) => u && !watched.has(u))
    if (fresh.length === 0) return
    for (const u of fresh) watched.add(u)
    try {
      for (const p of await useTransport().watch(fresh)) presence.set(p.user, p)
    } catch {
      for (const u of fresh) watched.delete(u)
    }
  }

  function setProfile(p: Profile): void {
    profiles.set(p.user, p)
    // Known now: a later ensure() must not replace it with an older copy.
    requested.add(p.user)
  }

  function setPresence(p: Presence): void {
    presence.set(p.user, p)
  }

  /** Publishes this user's own profile (set_profile) and shows it at once. */
  async function saveOwn(me: string, p: { name: string; avatar: string; status: string }): Promise<void> {
    await useTransport().setProfile(p.name.trim(), p.avatar, p.status.trim())
    setProfile({ user: me, name: p.name.trim(), avatar: p.avatar, status: p.status.trim() })
  }

  /** The display name, falling back to the user id. */
  /** The name to show for `user`: their display name without control or
   *  bidi characters (a peer's "\u202Eevil" must not read backwards in
   *  every list and header), else the user id. */
  function nameOf(user: string): string {
    const n = plainName(profiles.get(user)?.name ?? '')
    return n.trim() ? n : user
  }

  function isOnline(user: string): boolean {
    return presence.get(user)?.online ?? false
  }

  return { profiles, presence, ensure, watch, setProfile, saveOwn, setPresence, nameOf, isOnline }
})
