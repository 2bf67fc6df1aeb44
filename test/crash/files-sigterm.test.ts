import { describeWalks } from '../crash-walk.js';

describeWalks('SIGTERM');
