// Full-text search over the local history (the core's FTS5 index).
import { defineStore } from 'pinia'
import { ref } from 'vue'
import type { MessageView } from '../types/model'
import { toTransportError, useTransport } from '../services/transport'

export const SEARCH_LIMIT = 50

export const useSearchStore = defineStore('search', () => {
  const query = ref('')
  const results = ref<MessageView[]>([])
  const loading = ref(false)
  const error = ref<string | null>(null)
  let generation = 0

  /** Runs a search; a slower earlier answer never overwrites a later one. */
  async function run(q: string): Promise<void> {
    query.value = q
    const mine = ++generation
    if (!q.trim()) {
      results.value = []
      loading.value = false
      return
    }
    loading.value = true
    error.value = null
    try {
      const r = await useTransport().search(q.trim(), SEARCH_LIMIT)
      if (mine === generation) results.value = r
    } catch (e) {
      if (mine === generation) error.value = toTransportError(e).message
    } finally {
      if (mine === generation) loading.value = false
    }
  }

  function clear(): void {
    generation++
    query.value = ''
    results.value = []
    loading.value = false
  }

  return { query, results, loading, error, run, clear }
})
