//! What several integration tests share.

pub mod test_model;

#[allow(unused_imports)]
pub use test_model::model_path;
