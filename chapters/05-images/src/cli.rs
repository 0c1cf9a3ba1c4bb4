//! Command-line options shared by the binaries that talk to registries:
//! `ch05-images pull` and `ch06-registry push` take the same ones, as
//! docker's `pull` and `push` do.

use clap::Args;

use crate::registry::{ClientOptions, Credentials};

/// How to reach and log in to a registry.
#[derive(Debug, Clone, Default, Args)]
pub struct RegistryArgs {
    /// Speak plain HTTP to this registry (HOST or HOST:PORT); loopback
    /// registries always are.
    #[arg(long, value_name = "HOST[:PORT]")]
    pub insecure_registry: Vec<String>,
    /// Log in as this user (default: the credentials in
    /// ~/.docker/config.json, else anonymous).
    #[arg(long, requires = "password_stdin")]
    pub username: Option<String>,
    /// Read the password (or token) from stdin.
    #[arg(long, requires = "username")]
    pub password_stdin: bool,
}

impl RegistryArgs {
    /// The client options these say; with `--username`, the password is
    /// read from stdin now (one line, its line ending dropped).
    pub fn client_options(&self) -> std::io::Result<ClientOptions> {
        let credentials = match &self.username {
            Some(username) => {
                let mut password = String::new();
                std::io::stdin().read_line(&mut password)?;
                Some(Credentials {
                    username: username.clone(),
                    password: password.trim_end_matches(['\n', '\r']).to_string(),
                })
            }
            None => None,
        };
        Ok(ClientOptions {
            insecure: self.insecure_registry.clone(),
            credentials,
            trace: false,
        })
    }
}
