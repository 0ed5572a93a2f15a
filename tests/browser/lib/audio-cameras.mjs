// The test cameras for "sound plays": one per audio codec a camera may send, with what the
// browser must receive (AAC and Speex arrive transcoded to Opus; G.711 and Opus pass through).
// `extra` is tests/rtsp_server.py's command line (each camera also sends H.264 video).

export const AUDIO_CAMERAS = [
  { name: 'pcmu', extra: ['--audio', 'pcmu'], mime: 'audio/PCMU' },
  { name: 'pcma', extra: ['--audio', 'pcma'], mime: 'audio/PCMA' },
  { name: 'opus', extra: ['--audio', 'opus'], mime: 'audio/opus' },
  // The AAC encoder is named (tests mean the same on every machine): libavcodec's writes the
  // sync extension 0x2b7 after its AudioSpecificConfig, VisualOn's does not; one of each here,
  // both in both payload formats in codecs.test.mjs.
  { name: 'aac', extra: ['--audio', 'aac', '--aac-encoder', 'voaacenc'], mime: 'audio/opus' },
  { name: 'aac-latm', extra: ['--audio', 'aac-latm', '--aac-encoder', 'avenc_aac'], mime: 'audio/opus' },
  { name: 'speex', extra: ['--audio', 'speex'], mime: 'audio/opus' },
];
