//! People: presence (watching users) and profiles (fetched when connected,
//! cached for offline use).

use crate::client::{Client, ClientError, Result};
use crate::events::ClientEvent;
use courier_proto::{Presence, Profile};
use serde_json::json;

impl Client {
    /// Starts watching users' presence; returns their current presence.
    ///
    /// # Errors
    /// Offline, or the server's refusal.
    pub async fn watch(&self, users: &[String]) -> Result<Vec<Presence>> {
        let v = self.call(json!({"op": "watch", "users": users})).await?;
        Ok(serde_json::from_value(v.get("presence").cloned().unwrap_or_default())?)
    }

    /// Stops watching users.
    ///
    /// # Errors
    /// Offline, or the server's refusal.
    pub async fn unwatch(&self, users: &[String]) -> Result<()> {
        self.call(json!({"op": "unwatch", "users": users})).await.map(drop)
    }

    /// Profiles of users: fetched from the server when connected (and
    /// cached), else from the cache.
    ///
    /// # Errors
    /// The server's refusal or store failure.
    pub async fn profiles(&self, users: &[String]) -> Result<Vec<Profile>> {
        match self.call(json!({"op": "profiles", "users": users})).await {
            Ok(v) => {
                let ps: Vec<Profile> =
                    serde_json::from_value(v.get("profiles").cloned().unwrap_or_default())?;
                self.inner.store.upsert_profiles(&ps)?;
                Ok(ps)
            }
            Err(ClientError::Offline | ClientError::Timeout) => Ok(self.inner.store.profiles(users)?),
            Err(e) => Err(e),
        }
    }

    /// Sets this user's profile.
    ///
    /// # Errors
    /// Offline, or the server's refusal.
    pub async fn set_profile(&self, name: &str, avatar: &str, status: &str) -> Result<()> {
        self.call(json!({"op": "set_profile", "name": name, "avatar": avatar, "status": status})).await?;
        let profile = Profile {
            user: self.inner.me.clone(),
            name: name.into(),
            avatar: avatar.into(),
            status: status.into(),
        };
        self.inner.store.upsert_profiles(std::slice::from_ref(&profile))?;
        // The server tells watchers, not the user's own sessions: this one
        // learns it here (the UI shows the new name without a reload).
        self.inner.emit(ClientEvent::Profile { profile });
        Ok(())
    }
}
