// Cameras that really send H.264 Main / High profile (lib/h264_profile_camera.py: tests/rtsp_server.py
// with CABAC / 8x8 transforms on; plain `--h264-profile main|high` without B-frames sends a
// constrained-baseline SPS). Same options as procs.mjs's startCamera.

import path from 'node:path';

import { BROWSER_DIR, cameraArgs, config } from './config.mjs';
import { Child, waitForPort } from './procs.mjs';

export const PROFILE_CAMERA_SCRIPT = path.join(BROWSER_DIR, 'lib', 'h264_profile_camera.py');

// The profile-level-id the camera's SPS carries, per --h264-profile (640x360: level 3.0).
export const PROFILE_LEVEL_IDS = { 'constrained-baseline': '42c01e', main: '4d401e', high: '64001e' };

export async function startProfileCamera(logDir, options = {}) {
  const name = options.name || 'camera';
  const args = cameraArgs(options);
  args[0] = PROFILE_CAMERA_SCRIPT;
  const child = new Child(name, config.python, args, logDir);
  try {
    await child.waitForLine(/^READY /m);
    await waitForPort(options.port || config.cameraPort, { child });
  } catch (err) {
    await child.stop();
    throw err;
  }
  return child;
}
