//! The config loader: arbitrary text through `Config::from_toml`, then `validate()` when it
//! parses. Neither may panic; errors are fine.
#![no_main]

use cronhook::config::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(config) = Config::from_toml(text) {
        let _ = config.validate();
        let _ = config.database_url();
    }
});
