//! ICE servers for calls (protocol v1.2): the STUN/TURN list the last
//! `hello` carried, and fresh TURN credentials from the `ice` op.

use crate::client::{Client, Result};
use crate::state::lock;
use courier_proto::{IceOk, IceServer};
use serde_json::json;

impl Client {
    /// The STUN/TURN servers of the last `hello` (or of the last
    /// [`Client::ice`]); empty before the first hello and when the server
    /// has none. TURN usernames and credentials are opaque.
    pub fn ice_servers(&self) -> Vec<IceServer> {
        lock(&self.inner.hello).as_ref().map(|h| h.ice_servers.clone()).unwrap_or_default()
    }

    /// Asks the server for fresh ICE servers (new TURN credentials); call it
    /// before a call when [`Client::ice_servers`] is older than an hour.
    ///
    /// # Errors
    /// Offline, or the server's refusal.
    pub async fn ice(&self) -> Result<Vec<IceServer>> {
        let v = self.call(json!({"op": "ice"})).await?;
        let ok: IceOk = serde_json::from_value(v)?;
        if let Some(h) = lock(&self.inner.hello).as_mut() {
            h.ice_servers = ok.ice_servers.clone();
        }
        Ok(ok.ice_servers)
    }
}

#[cfg(test)]
mod tests {
    use crate::fake_server::{next_op, reply, v11_session};
    use courier_proto::IceServer;
    use serde_json::json;

    #[tokio::test(start_paused = true)]
    async fn ice_renews_the_servers_and_accepts_a_single_url_string() {
        let (_d, client, mut ws, _events) = v11_session().await;
        assert!(client.ice_servers().is_empty(), "a hello without ice_servers means none");
        let c = client.clone();
        let task = tokio::spawn(async move { c.ice().await });
        let req = next_op(&mut ws, "ice").await;
        reply(
            &mut ws,
            &req,
            json!({"ice_servers": [
                {"urls": "stun:s.example"},
                {"urls": ["turn:t.example"], "username": "100:alice", "credential": "c2VjcmV0"}]}),
        )
        .await;
        let got = task.await.unwrap().unwrap();
        let want = vec![
            IceServer { urls: vec!["stun:s.example".into()], username: None, credential: None },
            IceServer {
                urls: vec!["turn:t.example".into()],
                username: Some("100:alice".into()),
                credential: Some("c2VjcmV0".into()),
            },
        ];
        assert_eq!(got, want);
        assert_eq!(client.ice_servers(), want, "the fresh list replaces the hello's");
    }
}
