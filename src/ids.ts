/**
 * The identifiers that reach file names, catalog paths, tags and AWS calls. Each is checked
 * against a strict pattern wherever it enters from outside (a flag, a config, a stream, a tag),
 * so that nothing read from a hostile stream can name a path outside its directory.
 */

/** EC2 resource ids: a prefix and 8 (older resources) or 17 lowercase hex digits. */
const awsId = (prefix: string): RegExp => new RegExp(`^${prefix}-(?:[0-9a-f]{8}|[0-9a-f]{17})$`);

export const INSTANCE_ID = awsId('i');
export const VOLUME_ID = awsId('vol');
export const SNAPSHOT_ID = awsId('snap');

/** Region names such as eu-west-1, us-gov-west-1, ap-southeast-4. */
export const REGION = /^[a-z]{2}(?:-[a-z]+)+-\d{1,2}$/;

/** Job names: Bacula's %j (`Name.2026-11-24_10.00.00_07`) or `manual-<time>`. */
export const JOB_NAME = /^(?!\.{1,2}$)[\w.-]{1,128}$/;

/** Config names: they key snapshot tags and become one directory of the catalog path. */
export const CONFIG_NAME = /^(?!\.{1,2}$)[\w.-]{1,64}$/;
