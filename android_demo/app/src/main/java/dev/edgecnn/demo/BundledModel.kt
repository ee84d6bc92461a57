package dev.edgecnn.demo

import android.content.res.AssetManager
import dev.edgecnn.demo.core.Contract
import dev.edgecnn.demo.core.ContractException
import dev.edgecnn.demo.core.parseLabels
import java.io.FileInputStream
import java.io.FileNotFoundException
import java.nio.ByteBuffer
import java.nio.ByteOrder
import java.nio.channels.FileChannel

/** Why the app cannot run: shown on screen instead of the camera. */
class NotRunnable(message: String, val noModel: Boolean = false) : Exception(message)

/**
 * The three assets `edgecnn bundle` writes: model.tflite, contract.json and labels.txt.
 * Loading them checks that they belong together; the model's tensors are checked against the
 * contract when the interpreter is created ([CpuRunner.check]).
 */
class BundledModel(val contract: Contract, val model: ByteBuffer, val modelBytes: Long) {
    companion object {
        const val MODEL = "model.tflite"
        const val CONTRACT = "contract.json"
        const val LABELS = "labels.txt"

        fun load(assets: AssetManager): BundledModel {
            val present = assets.list("")?.toSet().orEmpty()
            val missing = listOf(MODEL, CONTRACT, LABELS).filter { it !in present }
            if (missing.isNotEmpty()) throw NotRunnable("missing assets: ${missing.joinToString()}", noModel = true)

            val contract = try {
                Contract.parse(readText(assets, CONTRACT), CONTRACT)
            } catch (e: ContractException) {
                throw NotRunnable(e.message ?: "contract.json is invalid")
            }
            val labels = parseLabels(readText(assets, LABELS))
            if (labels != contract.labels) {
                throw NotRunnable(
                    "labels.txt (${labels.size} labels) does not match contract.json (${contract.labels.size} labels)",
                )
            }
            val (buffer, size) = mapModel(assets)
            return BundledModel(contract, buffer, size)
        }

        private fun readText(assets: AssetManager, name: String): String =
            assets.open(name).use { it.readBytes().toString(Charsets.UTF_8) }

        /** Memory-maps the model (stored uncompressed, see noCompress); copies it if it was compressed. */
        private fun mapModel(assets: AssetManager): Pair<ByteBuffer, Long> = try {
            assets.openFd(MODEL).use { fd ->
                FileInputStream(fd.fileDescriptor).use { stream ->
                    stream.channel.map(FileChannel.MapMode.READ_ONLY, fd.startOffset, fd.declaredLength) to fd.declaredLength
                }
            }
        } catch (e: FileNotFoundException) {
            val bytes = assets.open(MODEL).use { it.readBytes() }
            val direct = ByteBuffer.allocateDirect(bytes.size).order(ByteOrder.nativeOrder())
            direct.put(bytes).rewind()
            direct to bytes.size.toLong()
        }
    }
}
