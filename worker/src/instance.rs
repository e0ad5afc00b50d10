//! The worker's instance name, one lookup for everything that names the instance (the
//! transactional id, the schema report's pod): `$POD_NAME`, else `$HOSTNAME`, else the kernel's
//! host name, the first that is not blank, trimmed.

/// The instance name from the environment and the kernel; `None` when all are blank.
pub fn instance_name() -> Option<String> {
    let kernel = std::fs::read_to_string("/proc/sys/kernel/hostname").ok();
    first_named([
        std::env::var("POD_NAME").ok(),
        std::env::var("HOSTNAME").ok(),
        kernel,
    ])
}

/// The first candidate that is not blank, trimmed.
fn first_named(candidates: [Option<String>; 3]) -> Option<String> {
    candidates
        .into_iter()
        .flatten()
        .map(|s| s.trim().to_owned())
        .find(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_name_that_is_not_blank_trimmed() {
        let some = |s: &str| Some(s.to_owned());
        assert_eq!(
            first_named([some("pod"), some("host"), None]).as_deref(),
            Some("pod")
        );
        assert_eq!(
            first_named([some(" "), some("host\n"), some("kernel")]).as_deref(),
            Some("host")
        );
        assert_eq!(
            first_named([None, None, some("kernel\n")]).as_deref(),
            Some("kernel")
        );
        assert_eq!(first_named([None, some(""), None]), None);
    }
}
