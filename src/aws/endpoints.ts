/**
 * Which URL each AWS service is reached at, per Region.
 *
 * Private networks reach AWS through interface VPC endpoints, one per service and Region
 * (`com.amazonaws.<region>.ec2`, `…ebs`, `…sts`, `…kms`): an EBS direct call sent to the EC2
 * endpoint fails, and so does a call of one Region sent to another Region's endpoint. So each
 * service has its key (`[aws] ec2-endpoint-url`, …), a plain URL belongs to the home Region
 * (`[aws] region`), and `REGION=URL` names another Region's. The SDK's own variables
 * (`AWS_ENDPOINT_URL_EC2`, …, and `AWS_ENDPOINT_URL`) count as plain URLs, after the keys;
 * `[aws] endpoint-url` stays the one-port shortcut for every service of the home Region (an
 * emulator, a proxy that routes by service).
 *
 * A Region without an endpoint of its own, where the home Region has a custom one, is refused:
 * sending that Region's calls to the home Region's endpoint would fail or, worse, reach the wrong
 * Region; reaching AWS's public endpoint instead may not be possible on the network that needed
 * the custom one. The refusal names the key to add to. IAM is global: its URL serves every Region.
 */
import type { AwsSettings, ServiceEndpoint } from '../config.js';
import { UsageError } from '../errors.js';

export type EndpointService = 'ec2' | 'ebs' | 'sts' | 'kms' | 'iam';

const KEY: Record<EndpointService, string> = {
  ec2: 'ec2-endpoint-url',
  ebs: 'ebs-endpoint-url',
  sts: 'sts-endpoint-url',
  kms: 'kms-endpoint-url',
  iam: 'iam-endpoint-url',
};

/** The SDK's service-specific endpoint variables ("Service-specific endpoints", SDKs and Tools Reference Guide). */
const ENV: Record<EndpointService, string> = {
  ec2: 'AWS_ENDPOINT_URL_EC2',
  ebs: 'AWS_ENDPOINT_URL_EBS',
  sts: 'AWS_ENDPOINT_URL_STS',
  kms: 'AWS_ENDPOINT_URL_KMS',
  iam: 'AWS_ENDPOINT_URL_IAM',
};

function setting(aws: AwsSettings, service: EndpointService): ServiceEndpoint | undefined {
  switch (service) {
    case 'ec2':
      return aws.ec2Endpoint;
    case 'ebs':
      return aws.ebsEndpoint;
    case 'sts':
      return aws.stsEndpoint;
    case 'kms':
      return aws.kmsEndpoint;
    case 'iam':
      return aws.iamEndpoint;
  }
}

/** The Region a plain endpoint URL belongs to: [aws] region, or the SDK's region variables. */
export function homeRegion(aws: AwsSettings, env: NodeJS.ProcessEnv = process.env): string | undefined {
  return aws.region ?? (env.AWS_REGION || undefined) ?? (env.AWS_DEFAULT_REGION || undefined);
}

/** Where a plain URL for `service` comes from, and the URL, in the order they count. */
function plainEndpoint(
  aws: AwsSettings,
  service: EndpointService,
  env: NodeJS.ProcessEnv,
): { from: string; url: string } | undefined {
  const key = setting(aws, service)?.url;
  if (key !== undefined) return { from: `[aws] ${KEY[service]}`, url: key };
  if (aws.endpointUrl !== undefined) return { from: '[aws] endpoint-url', url: aws.endpointUrl };
  const variable = env[ENV[service]];
  if (variable) return { from: ENV[service], url: variable };
  if (env.AWS_ENDPOINT_URL) return { from: 'AWS_ENDPOINT_URL', url: env.AWS_ENDPOINT_URL };
  return undefined;
}

/**
 * The URL of `service` in `region`, or undefined for AWS's own endpoint there. Throws a
 * UsageError (exit 2) when the home Region has a custom endpoint for the service and `region`
 * has none: `purpose` says what needed that Region (a DR copy, a restore).
 */
export function endpointFor(
  aws: AwsSettings,
  service: EndpointService,
  region: string,
  purpose: string,
  env: NodeJS.ProcessEnv = process.env,
): string | undefined {
  const qualified = setting(aws, service)?.byRegion[region];
  if (qualified !== undefined) return qualified;
  const plain = plainEndpoint(aws, service, env);
  if (plain === undefined) return undefined;
  const home = homeRegion(aws, env);
  if (service === 'iam' || home === undefined || home === region) return plain.url;
  throw new UsageError(
    `${plain.from} (${plain.url}) is the ${service.toUpperCase()} endpoint of ${home}; ${purpose} in ${region} ` +
      `would send ${region}'s calls to it. Add ${region}=<${region}'s ${service.toUpperCase()} endpoint URL> to ` +
      `[aws] ${KEY[service]}, or remove the endpoint settings to use AWS's public endpoints.`,
  );
}

/**
 * The endpoint options of one client: its custom URL, or AWS's own with the endpoint type's
 * variant. The SDK refuses FIPS or dual-stack beside a custom URL ("FIPS and custom endpoint are
 * not supported"): a custom URL is taken as it is, the variant being the URL's business.
 */
export function clientEndpoint(
  aws: AwsSettings,
  service: EndpointService,
  region: string,
  purpose: string,
): { endpoint?: string; useDualstackEndpoint: boolean; useFipsEndpoint: boolean } {
  const endpoint = endpointFor(aws, service, region, purpose);
  if (endpoint !== undefined) return { endpoint, useDualstackEndpoint: false, useFipsEndpoint: false };
  return {
    useDualstackEndpoint: aws.endpointType.startsWith('dualstack'),
    useFipsEndpoint: aws.endpointType.endsWith('fips'),
  };
}
