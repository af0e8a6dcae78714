//! The first stage: opening an input — a file, a URL, a live source or a capture device — under one
//! watchdog ([`watchdog`]) that bounds opening, stalls and requests and obeys cancellation, and
//! checking what it holds ([`source`]); object-storage inputs downloaded first ([`fetch`]); live
//! sources ([`live`]); bounded reads of side files (ladders, keys, lists: [`sidefile`]).

pub mod fetch;
pub mod live;
pub mod sidefile;
pub mod source;
pub mod watchdog;
