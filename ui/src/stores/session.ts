// Who is signed in, and the sign-in flow (first run → connect → profile).
import { defineStore } from 'pinia'
import { computed, ref } from 'vue'
import type { Account, ConnectConfig } from '../types/app'
import { useTransport } from '../services/transport'
import { useProfilesStore } from './profiles'

export type Phase = 'loading' | 'signin' | 'ready'

export const useSessionStore = defineStore('session', () => {
  const account = ref<Account | null>(null)
  const phase = ref<Phase>('loading')
  const error = ref<string | null>(null)
  const busy = ref(false)

  const me = computed(() => account.value?.user ?? '')

  async function load(): Promise<Account | null> {
    account.value = await useTransport().account()
    phase.value = account.value ? 'ready' : 'signin'
    return account.value
  }

  /** Connects with `config`, then publishes the chosen profile. */
  async function signIn(config: ConnectConfig, profile: { name: string; avatar: string; status: string }): Promise<boolean> {
    const t = useTransport()
    busy.value = true
    error.value = null
    try {
      account.value = await t.connect(config)
      try {
        await t.setProfile(profile.name, profile.avatar, profile.status)
        // Shown at once (the sidebar), without waiting for the `profile` event.
        useProfilesStore().setProfile({ user: account.value.user, ...profile })
      } catch {
        // Offline right after connecting: the profile can be set later in Settings.
      }
      phase.value = 'ready'
      return true
    } catch (e) {
      error.value = (e as { message?: string }).message ?? String(e)
      return false
    } finally {
      busy.value = false
    }
  }

  function signOut(): void {
    account.value = null
    phase.value = 'signin'
  }

  return { account, phase, error, busy, me, load, signIn, signOut }
})
