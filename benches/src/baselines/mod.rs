//! The raw engines each Cairn backend is compared with.
//!
//! A baseline does the least work an application using the engine directly would do for
//! the same operation: no tenant scoping, no validation, no conversion into owned `Bytes`,
//! no transaction it does not need. The distance between Cairn and its baseline is therefore
//! everything Cairn adds.

pub(crate) mod memory;
pub(crate) mod postgres;
pub(crate) mod sled;
