package dev.edgecnn.demo

import android.content.res.AssetManager
import com.google.ai.edge.litert.Accelerator
import com.google.ai.edge.litert.CompiledModel
import com.google.ai.edge.litert.TensorBuffer
import dev.edgecnn.demo.core.Contract
import dev.edgecnn.demo.core.Quantization
import dev.edgecnn.demo.core.TensorDtype
import dev.edgecnn.demo.core.TopK
import org.tensorflow.lite.DataType
import org.tensorflow.lite.Interpreter
import org.tensorflow.lite.Tensor
import java.nio.ByteBuffer
import java.nio.ByteOrder

/** One LiteRT backend: feeds a prepared input tensor, returns the class scores (dequantized). */
interface ModelRunner : AutoCloseable {
    /** What runs the model, for the screen (e.g. "CPU · XNNPACK · 4 threads"). */
    val backend: String

    /** One inference. [input] holds the model input as the contract defines it (native order). */
    fun run(input: ByteBuffer): FloatArray
}

/** The element type of a LiteRT tensor as the core names it; null for types the app does not feed. */
private fun dtypeOf(t: DataType): TensorDtype? = when (t) {
    DataType.FLOAT32 -> TensorDtype.FLOAT32
    DataType.INT8 -> TensorDtype.INT8
    DataType.UINT8 -> TensorDtype.UINT8
    else -> null
}

private fun quantOf(t: Tensor): Quantization? {
    val q = t.quantizationParams()
    return if (q.scale == 0f) null else Quantization(q.scale.toDouble(), q.zeroPoint)
}

/**
 * The LiteRT Interpreter on the CPU with the XNNPACK delegate and [threads] threads. It is also
 * the place where the model's own input/output tensors are compared with the contract.
 */
class CpuRunner(model: ByteBuffer, private val contract: Contract, threads: Int) : ModelRunner {
    private val interpreter = Interpreter(
        model,
        Interpreter.Options().setNumThreads(threads).setUseXNNPACK(true),
    )
    private val outTensor = interpreter.getOutputTensor(0)
    private val outDtype = dtypeOf(outTensor.dataType())

    /** The output's element type (float32 when it is of a type the app cannot read: see [check]). */
    val outputDtype: TensorDtype get() = outDtype ?: TensorDtype.FLOAT32

    /** How integer outputs are dequantized: the contract's parameters, else the model's. */
    val outputQuantization: Quantization? = contract.outputQuantization ?: quantOf(outTensor)
    private val output = ByteBuffer.allocateDirect(outTensor.numBytes()).order(ByteOrder.nativeOrder())

    override val backend = "CPU · XNNPACK · $threads threads"

    /** Why this model cannot run with this contract (empty when it can). */
    fun check(): List<String> {
        val problems = ArrayList<String>()
        if (interpreter.inputTensorCount != 1 || interpreter.outputTensorCount != 1) {
            problems += "the app runs single-input, single-output classifiers; this model has " +
                "${interpreter.inputTensorCount} input(s) and ${interpreter.outputTensorCount} output(s)"
        }
        val inTensor = interpreter.getInputTensor(0)
        problems += contract.mismatches(
            inputShape = inTensor.shape(),
            inputDtype = dtypeOf(inTensor.dataType()),
            inputQuant = quantOf(inTensor),
            outputElements = outTensor.numElements(),
            outputDtype = outDtype,
            outputQuant = quantOf(outTensor),
        )
        return problems
    }

    override fun run(input: ByteBuffer): FloatArray {
        input.rewind()
        output.rewind()
        interpreter.run(input, output)
        output.rewind()
        return decode(output, outputDtype, outputQuantization)
    }

    override fun close() = interpreter.close()

    companion object {
        fun decode(out: ByteBuffer, dtype: TensorDtype, q: Quantization?): FloatArray =
            if (dtype == TensorDtype.FLOAT32) {
                val fb = out.order(ByteOrder.nativeOrder()).asFloatBuffer()
                FloatArray(fb.remaining()).also { fb.get(it) }
            } else {
                val raw = ByteArray(out.remaining()).also { out.get(it) }
                TopK.dequantize(raw, dtype, q)
            }
    }
}

/**
 * The GPU through LiteRT's CompiledModel API (LiteRT 2.x runs the Interpreter API on the CPU
 * only). Creation throws when the device or the model is not supported; the caller then stays on
 * the CPU and says why.
 */
class GpuRunner(
    assets: AssetManager,
    assetName: String,
    private val contract: Contract,
    private val outDtype: TensorDtype,
    private val outQuant: Quantization?,
) : ModelRunner {
    private val model = CompiledModel.create(assets, assetName, CompiledModel.Options(Accelerator.GPU))
    private val inputs: List<TensorBuffer> = model.createInputBuffers()
    private val outputs: List<TensorBuffer> = model.createOutputBuffers()
    private val floats = FloatArray(contract.inputElements)
    private val bytes = ByteArray(contract.inputElements)

    override val backend = "GPU"

    override fun run(input: ByteBuffer): FloatArray {
        input.rewind()
        if (contract.inputDtype == TensorDtype.FLOAT32) {
            input.order(ByteOrder.nativeOrder()).asFloatBuffer().get(floats)
            inputs[0].writeFloat(floats)
        } else {
            input.get(bytes)
            inputs[0].writeInt8(bytes) // uint8 values travel as the same bytes
        }
        model.run(inputs, outputs)
        return if (outDtype == TensorDtype.FLOAT32) {
            outputs[0].readFloat()
        } else {
            TopK.dequantize(outputs[0].readInt8(), outDtype, outQuant)
        }
    }

    override fun close() {
        inputs.forEach { it.close() }
        outputs.forEach { it.close() }
        model.close()
    }

    companion object {
        /** A GPU runner for the bundled model, with the output type the CPU interpreter found. */
        fun forModelOf(cpu: CpuRunner, assets: AssetManager, contract: Contract): GpuRunner =
            GpuRunner(assets, BundledModel.MODEL, contract, cpu.outputDtype, cpu.outputQuantization)
    }
}
