//! Well-known applications ([PROTOCOL §9](https://github.com/ones-now/onesoidc/blob/main/docs/PROTOCOL.md#9-well-known-applications-ones-extension)).

use onesoidc_core::{
    Application, Error, applications_request, applications_url, find_application,
    parse_applications,
};

use crate::OnesIdClient;

impl OnesIdClient {
    /// Every application the provider lists for this device, each URL
    /// resolved against the issuer (a path becomes a URL on the issuer's
    /// origin), ready to be CIBA's `resource`. An entry whose URL is not
    /// http(s) is left out, with a warning naming it (one administrator's
    /// typo must not break every other application);
    /// [`application`](Self::application) names the error when asked for it.
    pub async fn applications(&self) -> Result<Vec<Application>, Error> {
        let listed = self.listed_applications().await?;
        Ok(listed
            .iter()
            .filter_map(|app| match app.resolved(self.issuer()) {
                Ok(app) => Some(app),
                Err(error) => {
                    tracing::warn!("leaving out a well-known application: {error}");
                    None
                }
            })
            .collect())
    }

    /// The applications as the provider lists them, URLs unresolved.
    async fn listed_applications(&self) -> Result<Vec<Application>, Error> {
        let endpoint = applications_url(self.issuer());
        self.with_device_bearer(
            |bearer| applications_request(self.issuer(), bearer),
            &endpoint,
            |r| parse_applications(&endpoint, r),
        )
        .await
    }

    /// The application with `client_identifier`, its URL resolved against the
    /// issuer, ready to be CIBA's `resource`.
    ///
    /// ```no_run
    /// use onesoidc_flows::CibaRequest;
    /// # async fn run(client: onesoidc_flows::OnesIdClient) -> Result<(), onesoidc_flows::Error> {
    /// let app = client.application("vhh-server").await?;
    /// let request = CibaRequest::for_username("alice").resource(app.url);
    /// let login = client.ciba(&request).await?;
    /// # Ok(()) }
    /// ```
    pub async fn application(&self, client_identifier: &str) -> Result<Application, Error> {
        let applications = self.listed_applications().await?;
        find_application(&applications, client_identifier, self.issuer())
    }
}
