// Run face-api's own FaceRecognitionNet (dlib's ResNet descriptor) on a given input.
//
// Driven by scripts/record_references.py --face-api; not meant to be run by hand. Usage:
//
//   node record_faceapi.cjs JOB_DIR
//
// JOB_DIR/input.bin is a raw little-endian float32 NHWC tensor of shape [1, 150, 150, 3]
// (RGB, 0-255). The weights come from the pinned @vladmandic/face-api package installed here
// (model/face_recognition_model*), the network from its CommonJS build on the pure-JS CPU
// backend of @tensorflow/tfjs. Writes JOB_DIR/embedding.bin (raw float32, 128 values) and
// JOB_DIR/results.json (versions and backend).

const fs = require('node:fs');
const path = require('node:path');

const faceapi = require('@vladmandic/face-api/dist/face-api.node-wasm.js');

async function main() {
  const jobDir = process.argv[2];
  if (!jobDir) throw new Error('usage: node record_faceapi.cjs JOB_DIR');
  const { tf } = faceapi;
  await tf.setBackend('cpu');
  await tf.ready();
  const modelDir = path.join(path.dirname(require.resolve('@vladmandic/face-api/package.json')), 'model');
  const specs = JSON.parse(fs.readFileSync(path.join(modelDir, 'face_recognition_model-weights_manifest.json'), 'utf8'));
  const shard = fs.readFileSync(path.join(modelDir, 'face_recognition_model.bin'));
  const weights = tf.io.decodeWeights(shard.buffer.slice(shard.byteOffset, shard.byteOffset + shard.byteLength),
    specs[0].weights);
  await faceapi.nets.faceRecognitionNet.loadFromWeightMap(weights);
  const raw = fs.readFileSync(path.join(jobDir, 'input.bin'));
  const data = new Float32Array(raw.byteLength / 4);
  new Uint8Array(data.buffer).set(raw);
  const descriptor = await faceapi.nets.faceRecognitionNet.computeFaceDescriptor(tf.tensor4d(data, [1, 150, 150, 3]));
  fs.writeFileSync(path.join(jobDir, 'embedding.bin'), Buffer.from(new Float32Array(descriptor).buffer));
  const version = JSON.parse(fs.readFileSync(path.join(modelDir, '..', 'package.json'), 'utf8')).version;
  fs.writeFileSync(path.join(jobDir, 'results.json'), JSON.stringify({
    face_api_version: version, tfjs_version: tf.version.tfjs, backend: tf.getBackend(),
  }));
}

main().catch((err) => { console.error(err); process.exit(1); });
