// Profiles (name, avatar preset, status line) and presence of other users.
import { defineStore } from 'pinia'
import { computed, reactive } from 'vue'
import type { Presence, Profile } from '../types/protocol'
import { useTransport } from '../services/transport'
import { nameLooks, plainName } from '../utils/text'

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
    // The status line is shown as it is (lists, panels): without control or
    // bidi characters. The name is kept as sent, for `nameOf` to compare.
    profiles.set(p.user, { ...p, status: plainName(p.status) })
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

  /** Who each look of a name belongs to: known users' display names and ids. */
  const holders = computed(() => {
    const map = new Map<string, Set<string>>()
    const claim = (name: string, user: string) => {
      for (const look of nameLooks(name)) map.set(look, (map.get(look) ?? new Set()).add(user))
    }
    for (const p of profiles.values()) {
      claim(p.name, p.user)
      claim(p.user, p.user)
    }
    return map
  })

  /**
   * The name to show for `user`: their display name without control or
   * bidi characters (a peer's "\u202Eevil" must not read backwards in
   * every list and header), else the user id when it draws nothing
   * (zero-width characters, fillers). A name that looks like another known
   * user's name or id (the same but for case, invisible characters,
   * full-width forms or letters drawn alike, `nameLooks`) is followed by the id, "Alice (@mallory)", on both
   * sides, as Matrix clients disambiguate: anyone may call themselves Alice.
   */
  function nameOf(user: string): string {
    const n = plainName(profiles.get(user)?.name ?? '').trim()
    const looks = nameLooks(n)
    if (!looks.length) return user
    const others = looks.some((look) => [...(holders.value.get(look) ?? [])].some((u) => u !== user))
    return others ? `${n} (@${user})` : n
  }

  function isOnline(user: string): boolean {
    return presence.get(user)?.online ?? false
  }

  return { profiles, presence, ensure, watch, setProfile, saveOwn, setPresence, nameOf, isOnline }
})
