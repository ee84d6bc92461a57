package dev.edgecnn.demo.core

import java.nio.ByteBuffer
import java.nio.ByteOrder

/** An 8-bit RGB image, row-major HxWx3 (R, G, B per pixel), as edgecnn.core.contract.load_image returns. */
class RgbImage(val width: Int, val height: Int, val pixels: ByteArray) {
    init {
        require(width > 0 && height > 0) { "image must be at least 1x1, got ${width}x$height" }
        require(pixels.size == width * height * 3) {
            "expected ${width * height * 3} bytes for ${width}x$height RGB, got ${pixels.size}"
        }
    }

    /** Channel c of pixel (x, y) as 0..255. */
    fun at(y: Int, x: Int, c: Int): Int = pixels[(y * width + x) * 3 + c].toInt() and 0xFF

    /**
     * This image turned clockwise by [degrees] (0, 90, 180 or 270): what a camera frame needs so
     * that it stands upright (CameraX's ImageInfo.rotationDegrees has this meaning).
     */
    fun rotatedClockwise(degrees: Int): RgbImage {
        val d = ((degrees % 360) + 360) % 360
        require(d % 90 == 0) { "rotation must be a multiple of 90 degrees, got $degrees" }
        if (d == 0) return this
        val w = width
        val h = height
        val (ow, oh) = if (d == 180) w to h else h to w
        val out = ByteArray(pixels.size)
        for (y in 0 until h) {
            for (x in 0 until w) {
                val (nx, ny) = when (d) {
                    90 -> (h - 1 - y) to x
                    180 -> (w - 1 - x) to (h - 1 - y)
                    else -> y to (w - 1 - x) // 270
                }
                val src = (y * w + x) * 3
                val dst = (ny * ow + nx) * 3
                out[dst] = pixels[src]
                out[dst + 1] = pixels[src + 1]
                out[dst + 2] = pixels[src + 2]
            }
        }
        return RgbImage(ow, oh, out)
    }

    companion object {
        /**
         * RGB from an RGBA_8888 buffer with row padding (a camera plane: [rowStride] bytes per row,
         * [pixelStride] bytes per pixel, R first). Alpha is dropped, as Pillow's convert("RGB") does.
         */
        fun fromRgba(src: ByteArray, width: Int, height: Int, rowStride: Int, pixelStride: Int = 4): RgbImage {
            require(pixelStride >= 3 && rowStride >= width * pixelStride) {
                "bad strides: rowStride $rowStride, pixelStride $pixelStride for width $width"
            }
            val need = rowStride * (height - 1) + width * pixelStride
            require(src.size >= need) { "RGBA buffer too small: ${src.size} bytes, need $need" }
            val out = ByteArray(width * height * 3)
            var o = 0
            for (y in 0 until height) {
                var p = y * rowStride
                for (x in 0 until width) {
                    out[o] = src[p]
                    out[o + 1] = src[p + 1]
                    out[o + 2] = src[p + 2]
                    o += 3
                    p += pixelStride
                }
            }
            return RgbImage(width, height, out)
        }
    }
}

/**
 * Turns an RGB frame into one model input exactly as edgecnn/core/contract.py's preprocess_array
 * does, in float32 and in the same order of operations, so the results are bit-identical:
 *
 * 1. bilinear resize with half-pixel centres, no antialiasing (`_axis` + `resize_bilinear`):
 *    the two source rows are interpolated horizontally, then the results vertically;
 * 2. `x = (v - mean) / std` per channel;
 * 3. for int8/uint8 inputs `q = clip(rint(x / scale) + zero_point)`, rounding half to even.
 *
 * An instance caches the sampling tables for the last source size, so a camera stream of
 * equally sized frames costs one pass over the output pixels per frame.
 */
class Preprocessor(val contract: Contract) {
    /** Source indices and weights of half-pixel bilinear sampling along one axis (float32). */
    class Axis(val lo: IntArray, val hi: IntArray, val frac: FloatArray)

    private val mean = contract.meanF
    private val std = contract.stdF
    private var cachedFor = -1 to -1
    private var ys: Axis? = null
    private var xs: Axis? = null

    private fun axes(img: RgbImage): Pair<Axis, Axis> {
        if (cachedFor != img.height to img.width) {
            ys = axis(img.height, contract.inputHeight)
            xs = axis(img.width, contract.inputWidth)
            cachedFor = img.height to img.width
        }
        return ys!! to xs!!
    }

    /** The normalised float32 input (HxWx3), before any quantization. */
    fun normalized(img: RgbImage, out: FloatArray = FloatArray(contract.inputElements)): FloatArray {
        require(out.size == contract.inputElements) { "output needs ${contract.inputElements} floats" }
        val (ya, xa) = axes(img)
        val w = img.width
        val px = img.pixels
        val outW = contract.inputWidth
        var o = 0
        for (oy in 0 until contract.inputHeight) {
            val r0 = ya.lo[oy] * w * 3
            val r1 = ya.hi[oy] * w * 3
            val fy = ya.frac[oy]
            for (ox in 0 until outW) {
                val c0 = xa.lo[ox] * 3
                val c1 = xa.hi[ox] * 3
                val fx = xa.frac[ox]
                for (c in 0 until 3) {
                    val a = (px[r0 + c0 + c].toInt() and 0xFF).toFloat()
                    val b = (px[r0 + c1 + c].toInt() and 0xFF).toFloat()
                    val d = (px[r1 + c0 + c].toInt() and 0xFF).toFloat()
                    val e = (px[r1 + c1 + c].toInt() and 0xFF).toFloat()
                    val top = a + (b - a) * fx
                    val bottom = d + (e - d) * fx
                    val v = top + (bottom - top) * fy
                    out[o++] = (v - mean[c]) / std[c]
                }
            }
        }
        return out
    }

    /** The quantized input (int8 or uint8 values stored as bytes) for an integer contract. */
    fun quantized(img: RgbImage, out: ByteArray = ByteArray(contract.inputElements)): ByteArray {
        val dtype = contract.inputDtype
        val q = contract.inputQuantization
        check(dtype.isQuantized && q != null) { "the contract's input is ${dtype.id}, not quantized" }
        require(out.size == contract.inputElements) { "output needs ${contract.inputElements} bytes" }
        val x = normalized(img)
        for (i in x.indices) out[i] = quantize(x[i], q.scaleF, q.zeroPoint, dtype).toByte()
        return out
    }

    /**
     * Writes the model input for [img] into [dst] (native byte order for float32), ready for the
     * interpreter; [dst] is rewound and must hold [Contract.inputElements] elements.
     */
    fun write(img: RgbImage, dst: ByteBuffer) {
        dst.rewind()
        if (contract.inputDtype == TensorDtype.FLOAT32) {
            val x = normalized(img)
            val order = dst.order()
            if (order != ByteOrder.nativeOrder()) dst.order(ByteOrder.nativeOrder())
            dst.asFloatBuffer().put(x)
            dst.order(order)
        } else {
            dst.put(quantized(img))
        }
        dst.rewind()
    }

    companion object {
        /** Mirrors `_axis` in edgecnn/core/contract.py operation by operation, in float32. */
        fun axis(nIn: Int, nOut: Int): Axis {
            val scale = nIn.toFloat() / nOut.toFloat()
            val lo = IntArray(nOut)
            val hi = IntArray(nOut)
            val frac = FloatArray(nOut)
            val maxPos = (nIn - 1).toFloat()
            for (i in 0 until nOut) {
                var pos = (i.toFloat() + 0.5f) * scale - 0.5f
                pos = minOf(maxOf(pos, 0.0f), maxPos)
                val l = Math.floor(pos.toDouble()).toFloat()
                frac[i] = pos - l
                lo[i] = l.toInt()
                hi[i] = minOf(lo[i] + 1, nIn - 1)
            }
            return Axis(lo, hi, frac)
        }

        /** `clip(rint(x / scale) + zero_point, lo, hi)` in float32, round half to even. */
        fun quantize(x: Float, scale: Float, zeroPoint: Int, dtype: TensorDtype): Int {
            val r = Math.rint((x / scale).toDouble()).toFloat()
            val v = r + zeroPoint.toFloat()
            val clipped = minOf(maxOf(v, dtype.min.toFloat()), dtype.max.toFloat())
            return clipped.toInt()
        }
    }
}
