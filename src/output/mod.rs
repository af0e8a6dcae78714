//! The last stage: the package is written into a staging folder and renamed into place when
//! complete ([`staging`]), and sent to HTTP and object-storage destinations as it is made
//! ([`publish`]), with retries ([`retry`]).

pub mod publish;
pub mod retry;
pub mod staging;
