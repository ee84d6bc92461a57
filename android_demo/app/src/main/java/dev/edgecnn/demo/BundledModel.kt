package dev.edgecnn.demo

import android.content.res.AssetManager
import dev.edgecnn.demo.core.Contract
import dev.edgecnn.demo.core.ContractException
import dev.edgecnn.demo.core.ModelFiles
import java.io.File
import java.io.FileInputStream
import java.io.FileNotFoundException
import java.nio.ByteBuffer
import java.nio.ByteOrder
import java.nio.channels.FileChannel

/** Why the app cannot run: shown on screen instead of the camera. */
class NotRunnable(message: String, val noModel: Boolean = false) : Exception(message)

/**
 * The asset `edgecnn bundle` writes: model.tflite, which carries its contract and labels as
 * associated files of its standard metadata ([ModelFiles]). The model's tensors are checked
 * against the contract when the interpreter is created ([CpuRunner.check]).
 */
class BundledModel(val contract: Contract, val model: ByteBuffer, val modelBytes: Long) {
    companion object {
        const val MODEL = "model.tflite"

        /** [cacheDir]: where a copy of the model is kept for java.util.zip, which reads files only. */
        fun load(assets: AssetManager, cacheDir: File): BundledModel {
            if (MODEL !in assets.list("")?.toSet().orEmpty()) throw NotRunnable("missing asset: $MODEL", noModel = true)
            val contract = try {
                ModelFiles.contract(copyOut(assets, cacheDir))
            } catch (e: ContractException) {
                throw NotRunnable(e.message ?: "the model's contract is invalid")
            }
            val (buffer, size) = mapModel(assets)
            return BundledModel(contract, buffer, size)
        }

        private fun copyOut(assets: AssetManager, cacheDir: File): File {
            val copy = File(cacheDir, MODEL)
            val tmp = File(cacheDir, "$MODEL.tmp")
            assets.open(MODEL).use { input -> tmp.outputStream().use { input.copyTo(it) } }
            if (!tmp.renameTo(copy)) throw NotRunnable("cannot write $copy")
            return copy
        }

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
