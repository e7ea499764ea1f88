//! The `perf script` trace reader, and the format detection in front of both readers.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    haltpoll_fuzz::trace(data, Some(haltpoll_fuzz::trace::Format::Perf));
    haltpoll_fuzz::trace(data, None);
});
