import { describeWalks } from '../crash-walk.js';

describeWalks('ENOSPC');
