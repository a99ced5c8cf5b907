pub mod test_model;
