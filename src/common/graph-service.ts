/**
 * Where a Microsoft Graph service and its token endpoint answer, with the app credentials it issues
 * tokens for. The built-in simulator's handle is one; posture's demo connection needs one; neither
 * depends on the other.
 */
export interface GraphServiceAddress {
  readonly tenantId: string;
  readonly clientId: string;
  readonly clientSecret: string;
  /** https://HOST:PORT : token endpoint host (POST {loginUrl}/{tenant}/oauth2/v2.0/token). */
  readonly loginUrl: string;
  /** https://HOST:PORT : Graph host (GET {graphUrl}/v1.0/deviceManagement/managedDevices). */
  readonly graphUrl: string;
  /** PEM file of the CA that signed the service's certificate. */
  readonly caFile: string;
}
