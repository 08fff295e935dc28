//! The small Tokio runtime a blocking content store runs its requests on (the OCI and S3
//! stores are HTTP clients behind the synchronous `BlobStore` trait).

use std::future::Future;
use std::io;

/// The store's own runtime, shut down in the background when the store goes (a runtime may
/// not be dropped where blocking is not allowed, and the store may be dropped anywhere).
pub(crate) struct StoreRuntime(Option<tokio::runtime::Runtime>);

impl StoreRuntime {
    /// A runtime of two threads named `name`.
    pub(crate) fn new(name: &str) -> io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name(name)
            .enable_all()
            .build()?;
        Ok(StoreRuntime(Some(runtime)))
    }

    pub(crate) fn handle(&self) -> &tokio::runtime::Handle {
        self.0.as_ref().expect("present until dropped").handle()
    }

    /// Runs `future` on the store's runtime and waits for its output, from any thread (a
    /// runtime's worker included: it blocks there as any blocking call would).
    pub(crate) fn run<T: Send + 'static>(
        &self,
        future: impl Future<Output = T> + Send + 'static,
    ) -> T {
        let task = self.handle().spawn(future);
        match futures_executor::block_on(task) {
            Ok(output) => output,
            Err(error) => std::panic::resume_unwind(error.into_panic()),
        }
    }
}

impl Drop for StoreRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}
