package dev.edgecnn.demo

import androidx.camera.core.ImageAnalysis
import androidx.camera.core.ImageProxy
import dev.edgecnn.demo.core.Contract
import dev.edgecnn.demo.core.Prediction
import dev.edgecnn.demo.core.Preprocessor
import dev.edgecnn.demo.core.RgbImage
import dev.edgecnn.demo.core.TopK
import java.nio.ByteBuffer
import java.nio.ByteOrder

/** What one analysed frame produced. */
class FrameResult(
    val top: List<Prediction>,
    /** Whether the scores look like probabilities (softmax output), so they can be shown as %. */
    val probabilities: Boolean,
    val backend: String,
    val inferenceMs: Double,
    val preprocessMs: Double,
    val frameWidth: Int,
    val frameHeight: Int,
)

/**
 * CameraX analyzer: RGBA_8888 frame -> upright RGB -> the contract's input tensor (the pure-Kotlin
 * core, identical to edgecnn.core.contract) -> LiteRT -> top-3. Runs on one background thread; the
 * [runner] is only swapped on that same thread, so a frame never meets a closed interpreter.
 */
class FrameAnalyzer(
    private val contract: Contract,
    private val onResult: (FrameResult) -> Unit,
    private val onError: (Exception) -> Unit,
) : ImageAnalysis.Analyzer {
    var runner: ModelRunner? = null

    private val preprocessor = Preprocessor(contract)
    private val input: ByteBuffer = ByteBuffer
        .allocateDirect(contract.inputElements * contract.inputDtype.bytesPerElement)
        .order(ByteOrder.nativeOrder())
    private var rgba = ByteArray(0)

    override fun analyze(image: ImageProxy) {
        image.use {
            val r = runner ?: return
            try {
                val t0 = System.nanoTime()
                val frame = toRgb(image).rotatedClockwise(image.imageInfo.rotationDegrees)
                preprocessor.write(frame, input)
                val t1 = System.nanoTime()
                val scores = r.run(input)
                val t2 = System.nanoTime()
                onResult(
                    FrameResult(
                        top = TopK.predictions(scores, contract.labels, 3),
                        probabilities = looksLikeProbabilities(scores),
                        backend = r.backend,
                        inferenceMs = (t2 - t1) / 1e6,
                        preprocessMs = (t1 - t0) / 1e6,
                        frameWidth = frame.width,
                        frameHeight = frame.height,
                    ),
                )
            } catch (e: Exception) {
                onError(e)
            }
        }
    }

    /** The frame's single RGBA_8888 plane (rows may be padded) as packed RGB. */
    private fun toRgb(image: ImageProxy): RgbImage {
        val plane = image.planes[0]
        val buf = plane.buffer
        buf.rewind()
        if (rgba.size != buf.remaining()) rgba = ByteArray(buf.remaining())
        buf.get(rgba)
        return RgbImage.fromRgba(rgba, image.width, image.height, plane.rowStride, plane.pixelStride)
    }

    private fun looksLikeProbabilities(s: FloatArray): Boolean =
        s.all { it >= 0f && it <= 1.0001f } && Math.abs(s.sum() - 1f) < 0.05f
}
