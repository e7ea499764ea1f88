//! The text trace reader (`haltpoll replay`'s one period per line), gzip included.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    haltpoll_fuzz::trace(data, Some(haltpoll_fuzz::trace::Format::Text));
});
