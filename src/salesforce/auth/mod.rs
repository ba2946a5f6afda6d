//! Signing in to Salesforce: the OAuth grants (`flows.rs`), the JWT bearer assertion
//! (`jwt.rs`), the interactive web-server login with its one-shot callback listener
//! (`login.rs`) and the token store file (`store.rs`).

pub mod flows;
pub mod jwt;
pub mod login;
pub mod store;

pub use login::{login, LoginOptions};
pub use store::{mask, project_path, store_path, StorePath, StoredTokens, TokenStore};
