// The H.264 profile-level-id the test camera's SPS carries, per `--h264-profile`
// (tests/rtsp_server.py at 640x360: level 3.0).

export const PROFILE_LEVEL_IDS = { 'constrained-baseline': '42c01e', main: '4d401e', high: '64001e' };
