//! Signing in to Salesforce: the OAuth grants (`flows.rs`), the interactive web-server login
//! with its one-shot callback listener (`login.rs`) and the token store file (`store.rs`).

pub mod flows;
pub mod login;
pub mod store;

pub use login::{login, LoginOptions};
pub use store::{mask, store_path, StoredTokens, TokenStore};
