//! The limits every request of this crate is checked against before it is sent.
//!
//! ZooKeeper refuses a request larger than its `jute.maxbuffer` by dropping the connection,
//! with no error to say why. A client that retried would drop its connection again and again,
//! and each drop suspends every recipe on the client: lock guards go lost, selector leaders are
//! cancelled. So a request that would be too large is refused here, with a typed
//! [`Error::InvalidArgument`], before anything is sent.

use zookeeper_client::Acl;

use crate::error::{Error, Result};

/// ZooKeeper's default `jute.maxbuffer` (0xfffff bytes): the default of
/// [`ClientBuilder::max_request_size`](crate::ClientBuilder::max_request_size).
pub const DEFAULT_MAX_REQUEST_SIZE: usize = 0xfffff;

/// What a write request carries beyond its path, data and ACLs (the request header, lengths,
/// flags), generously: a request at the edge is refused rather than sent.
const REQUEST_OVERHEAD: usize = 128;

/// The size of one ACL in a request: permissions, then the scheme and the id, each with its
/// length.
fn acl_size(acl: &Acl) -> usize {
    4 + 4 + acl.scheme().len() + 4 + acl.id().len()
}

/// The size of a request that writes `data_len` bytes of data to a node at `path` (as sent:
/// with the client's chroot), with `acls`, as the server counts it against `jute.maxbuffer`
/// (a little over).
pub(crate) fn request_size(path_len: usize, data_len: usize, acls: &[Acl]) -> usize {
    REQUEST_OVERHEAD + path_len + data_len + acls.iter().map(acl_size).sum::<usize>()
}

/// Refuses a request of [`request_size`] over `limit`, naming `what` it was for and `path`.
pub(crate) fn check_request(
    what: &str,
    path: &str,
    path_len: usize,
    data_len: usize,
    acls: &[Acl],
    limit: usize,
) -> Result<()> {
    let size = request_size(path_len, data_len, acls);
    if size <= limit {
        return Ok(());
    }
    Err(Error::InvalidArgument(format!(
        "{what} at {path:?}: the request would be about {size} bytes (its path, {data_len} bytes \
         of data and its ACLs), over the {limit} bytes the server accepts (jute.maxbuffer, \
         ClientBuilder::max_request_size); ZooKeeper would drop the connection instead"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use zookeeper_client::Acls;

    #[test]
    fn a_request_counts_its_path_data_and_acls() {
        let open = Acls::anyone_all().to_vec();
        let small = request_size(10, 100, &open);
        assert!(small > 110 && small < 400, "{small}");
        assert!(check_request("create", "/a", 10, 100, &open, DEFAULT_MAX_REQUEST_SIZE).is_ok());
        let data = DEFAULT_MAX_REQUEST_SIZE - 1200;
        assert!(check_request("create", "/a", 10, data, &open, DEFAULT_MAX_REQUEST_SIZE).is_ok());
        let refused = check_request("create", "/a", 1200, data, &open, DEFAULT_MAX_REQUEST_SIZE);
        match refused {
            Err(Error::InvalidArgument(why)) => {
                assert!(
                    why.contains("jute.maxbuffer") && why.contains("\"/a\""),
                    "{why}"
                )
            }
            other => panic!("{other:?}"),
        }
    }
}
