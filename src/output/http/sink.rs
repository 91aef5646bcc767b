//! The running `http` output: encodes each batch in the configured body
//! format and POSTs it, gzipped if asked.

use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use reqwest::header::{CONTENT_ENCODING, CONTENT_TYPE};

use super::body::BodyFormat;
use super::config::HttpConfig;
use crate::batch::{Delivery, Output, OutputError};
use crate::event::Event;
use crate::output::net::SetupError;
use crate::output::net::auth::{Auth, with_auth};
use crate::output::net::client::{Compression, build_client, gzip};
use crate::output::net::response::{status_error, transport_error};

/// The running `http` output.
pub struct HttpOutput {
    format: BodyFormat,
    request: Arc<Request>,
}

/// What every request shares.
struct Request {
    client: reqwest::Client,
    url: reqwest::Url,
    auth: Auth,
    content_type: &'static str,
    compress: Compression,
    level: u32,
}

impl HttpOutput {
    pub fn new(config: &HttpConfig, component: &str) -> Result<Self, SetupError> {
        let (url, settings) = config.client_settings()?;
        let client = build_client(&settings, component)?;
        Ok(Self {
            format: config.body,
            request: Arc::new(Request {
                client,
                url,
                auth: settings.auth,
                content_type: config.body.content_type(),
                compress: config.compress,
                level: config.compress_level,
            }),
        })
    }
}

impl Output for HttpOutput {
    fn encode(&mut self, event: &Event, body: &mut Vec<u8>) {
        self.format.encode_one(event, body);
    }

    fn finish(&mut self, body: &mut Vec<u8>) {
        self.format.finish(body);
    }

    fn send(
        &mut self,
        body: Bytes,
        _count: usize,
    ) -> impl Future<Output = Result<Delivery, OutputError>> + Send + 'static {
        let request = self.request.clone();
        async move { request.post(body).await }
    }
}

impl Request {
    async fn post(&self, body: Bytes) -> Result<Delivery, OutputError> {
        let gzipped = self.compress == Compression::Gzip;
        let body = if gzipped {
            Bytes::from(gzip(body, self.level).await?)
        } else {
            body
        };
        let mut request = self
            .client
            .post(self.url.clone())
            .header(CONTENT_TYPE, self.content_type)
            .body(body);
        if gzipped {
            request = request.header(CONTENT_ENCODING, "gzip");
        }
        let response = with_auth(request, &self.auth)
            .send()
            .await
            .map_err(|e| transport_error(&e))?;
        let status = response.status();
        let headers = response.headers().clone();
        // Read the answer to the end so the connection can be reused; a
        // 2xx whose body breaks off is retried (a duplicate beats a loss).
        let answer = response.bytes().await.map_err(|e| transport_error(&e))?;
        if status.is_success() {
            Ok(Delivery::All)
        } else {
            Err(status_error(status, &headers, &answer))
        }
    }
}
