//! Integration tests: the real server on a real socket with a real database, one module per
//! route family.

mod bad_input;
mod helpers;
mod keys;
mod meta;
mod sign_in;
mod storage;
mod users;
