//! Settings: the key/value table, and the account the store belongs to.

use super::{Result, Store, StoreError};
use rusqlite::{OptionalExtension, params};

impl Store {
    /// A setting's value.
    ///
    /// # Errors
    /// On SQLite failure.
    pub fn setting(&self, key: &str) -> Result<Option<String>> {
        self.with(|c| {
            Ok(c.query_row("SELECT value FROM settings WHERE key = ?1", [key], |r| r.get(0)).optional()?)
        })
    }

    /// Sets a setting.
    ///
    /// # Errors
    /// On SQLite failure.
    pub fn set_setting(&self, key: &str, value: &str) -> Result<()> {
        self.with(|c| {
            c.execute(
                "INSERT INTO settings (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                params![key, value],
            )?;
            Ok(())
        })
    }

    /// Binds the store to `user` on first use; refuses another account later.
    ///
    /// # Errors
    /// [`StoreError::AccountMismatch`] when the store belongs to someone else.
    pub fn claim_user(&self, user: &str) -> Result<()> {
        match self.setting("user")? {
            Some(stored) if stored != user => {
                Err(StoreError::AccountMismatch { stored, requested: user.to_owned() })
            }
            Some(_) => Ok(()),
            None => self.set_setting("user", user),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::store::StoreError;
    use crate::store::test_support::open;

    #[test]
    fn another_account_is_refused() {
        let (_d, s) = open();
        s.claim_user("alice").unwrap();
        s.claim_user("alice").unwrap();
        assert!(matches!(s.claim_user("bob"), Err(StoreError::AccountMismatch { .. })));
    }
}
