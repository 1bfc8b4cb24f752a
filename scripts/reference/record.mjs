// Run the original TF.js graph models on given inputs and write their outputs.
//
// Driven by scripts/record_references.py; not meant to be run by hand. Usage:
//
//   node record.mjs JOB_DIR
//
// JOB_DIR/job.json lists the models:
//   {"models": [{"name": "faceres", "model_json": "/abs/path/faceres.json",
//                "input": "faceres.input.bin", "shape": [1, 224, 224, 3],
//                "outputs": {"embedding": "global_pooling/Mean"}}, ...]}
// where "input" is a raw little-endian float32 file (NHWC, row-major) in JOB_DIR and
// "outputs" maps an output key to a graph tensor name (any node, not only the graph's
// declared outputs). For each output this writes JOB_DIR/<name>__<key>.bin (raw
// float32) and finally JOB_DIR/results.json with the shapes and the tfjs version.
//
// The pure-JS CPU backend of @tensorflow/tfjs is used (no tfjs-node binary), and the
// models are read from local files through a small custom IOHandler.

import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';

import * as tf from '@tensorflow/tfjs';

/**
 * An IOHandler that loads a TF.js graph model (model.json + weight shards) from disk.
 * The shards of all manifest groups are concatenated in manifest order, which is the
 * layout tf.io expects for `weightSpecs` + `weightData`.
 * @param {string} modelJson absolute path of model.json
 * @returns {tf.io.IOHandler}
 */
function fileHandler(modelJson) {
  return {
    async load() {
      const spec = JSON.parse(await readFile(modelJson, 'utf8'));
      const dir = path.dirname(modelJson);
      const weightSpecs = [];
      const buffers = [];
      for (const group of spec.weightsManifest) {
        weightSpecs.push(...group.weights);
        for (const p of group.paths) buffers.push(await readFile(path.join(dir, p)));
      }
      const all = Buffer.concat(buffers);
      const weightData = all.buffer.slice(all.byteOffset, all.byteOffset + all.byteLength);
      return {
        modelTopology: spec.modelTopology,
        format: spec.format,
        generatedBy: spec.generatedBy,
        convertedBy: spec.convertedBy,
        signature: spec.signature,
        userDefinedMetadata: spec.userDefinedMetadata,
        weightSpecs,
        weightData,
      };
    },
  };
}

/**
 * Read a raw float32 file into a Float32Array (copying, so alignment does not matter).
 * @param {string} file
 * @returns {Promise<Float32Array>}
 */
async function readFloat32(file) {
  const buf = await readFile(file);
  const out = new Float32Array(buf.byteLength / 4);
  new Uint8Array(out.buffer).set(buf);
  return out;
}

async function main() {
  const jobDir = process.argv[2];
  if (!jobDir) throw new Error('usage: node record.mjs JOB_DIR');
  await tf.setBackend('cpu');
  await tf.ready();
  const job = JSON.parse(await readFile(path.join(jobDir, 'job.json'), 'utf8'));
  const results = { tfjs_version: tf.version.tfjs, backend: tf.getBackend(), models: {} };

  for (const m of job.models) {
    const model = await tf.loadGraphModel(fileHandler(m.model_json));
    const data = await readFloat32(path.join(jobDir, m.input));
    const expected = m.shape.reduce((a, b) => a * b, 1);
    if (data.length !== expected) {
      throw new Error(`${m.name}: input holds ${data.length} floats, shape needs ${expected}`);
    }
    const input = tf.tensor(data, m.shape, 'float32');
    const keys = Object.keys(m.outputs);
    let outs = model.execute(input, keys.map((k) => m.outputs[k]));
    if (!Array.isArray(outs)) outs = [outs];
    results.models[m.name] = {};
    for (let i = 0; i < keys.length; i += 1) {
      const t = outs[i];
      if (t.dtype !== 'float32') throw new Error(`${m.name}/${keys[i]}: dtype ${t.dtype}`);
      const values = await t.data();
      const file = `${m.name}__${keys[i]}.bin`;
      await writeFile(path.join(jobDir, file),
        Buffer.from(values.buffer, values.byteOffset, values.byteLength));
      results.models[m.name][keys[i]] = { tensor: m.outputs[keys[i]], shape: t.shape, file };
      console.log(`${m.name}/${keys[i]} (${m.outputs[keys[i]]}): shape [${t.shape}]`);
    }
    tf.dispose([input, ...outs]);
    model.dispose();
  }
  await writeFile(path.join(jobDir, 'results.json'), JSON.stringify(results, null, 2));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
