//! Example programs live beside this file (`cargo run -p ft-examples --example NAME`); this library is empty.
