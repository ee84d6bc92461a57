package dev.edgecnn.demo

import android.Manifest
import android.content.pm.PackageManager
import android.os.Bundle
import android.util.Log
import android.util.Size
import android.view.View
import android.widget.Button
import android.widget.Switch
import android.widget.TextView
import androidx.activity.ComponentActivity
import androidx.activity.result.contract.ActivityResultContracts
import androidx.camera.core.CameraSelector
import androidx.camera.core.ImageAnalysis
import androidx.camera.core.Preview
import androidx.camera.core.resolutionselector.ResolutionSelector
import androidx.camera.core.resolutionselector.ResolutionStrategy
import androidx.camera.lifecycle.ProcessCameraProvider
import androidx.camera.view.PreviewView
import androidx.core.content.ContextCompat
import java.util.concurrent.ExecutorService
import java.util.concurrent.Executors

/**
 * Camera preview + live classification with the bundled model. Everything model-related runs on
 * one background thread ([worker]); the UI thread only shows results.
 */
class MainActivity : ComponentActivity() {
    private lateinit var previewView: PreviewView
    private lateinit var topViews: List<TextView>
    private lateinit var timingView: TextView
    private lateinit var messageView: TextView
    private lateinit var gpuSwitch: Switch
    private lateinit var threadsButton: Button

    private val worker: ExecutorService = Executors.newSingleThreadExecutor()
    private var bundled: BundledModel? = null
    private var analyzer: FrameAnalyzer? = null

    // owned by the worker thread
    private var cpu: CpuRunner? = null
    private var gpu: GpuRunner? = null
    private var threads = DEFAULT_THREADS

    private val askCamera = registerForActivityResult(ActivityResultContracts.RequestPermission()) { granted ->
        if (granted) startCamera() else showMessage(getString(R.string.camera_denied))
    }

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        setContentView(R.layout.activity_main)
        previewView = findViewById(R.id.preview)
        topViews = listOf(findViewById(R.id.top1), findViewById(R.id.top2), findViewById(R.id.top3))
        timingView = findViewById(R.id.timing)
        messageView = findViewById(R.id.message)
        gpuSwitch = findViewById(R.id.gpu_switch)
        threadsButton = findViewById(R.id.threads_button)
        previewView.scaleType = PreviewView.ScaleType.FILL_CENTER
        threadsButton.text = getString(R.string.threads, threads)

        val model = try {
            BundledModel.load(assets, cacheDir)
        } catch (e: NotRunnable) {
            showMessage(if (e.noModel) getString(R.string.no_model) else getString(R.string.refused, e.message))
            return
        }
        bundled = model
        val a = FrameAnalyzer(model.contract, ::showResult) { e ->
            Log.e(TAG, "inference failed", e)
            runOnUiThread { timingView.text = getString(R.string.failed, e.message ?: e.javaClass.simpleName) }
        }
        analyzer = a

        worker.execute {
            val problems = try {
                val runner = CpuRunner(model.model, model.contract, threads)
                cpu = runner
                runner.check()
            } catch (e: Exception) {
                listOf("LiteRT cannot load model.tflite: ${e.message}")
            }
            if (problems.isNotEmpty()) {
                cpu?.close()
                cpu = null
                runOnUiThread { showMessage(getString(R.string.refused, problems.joinToString("\n"))) }
            } else {
                a.runner = cpu
                runOnUiThread { onModelReady() }
            }
        }
    }

    private fun onModelReady() {
        gpuSwitch.setOnCheckedChangeListener { _, on -> worker.execute { useGpu(on) } }
        threadsButton.setOnClickListener {
            val next = THREAD_CHOICES[(THREAD_CHOICES.indexOf(threads) + 1) % THREAD_CHOICES.size]
            threadsButton.text = getString(R.string.threads, next)
            worker.execute { setThreads(next) }
        }
        if (ContextCompat.checkSelfPermission(this, Manifest.permission.CAMERA) == PackageManager.PERMISSION_GRANTED) {
            startCamera()
        } else {
            askCamera.launch(Manifest.permission.CAMERA)
        }
    }

    private fun startCamera() {
        val a = analyzer ?: return
        val future = ProcessCameraProvider.getInstance(this)
        future.addListener({
            val provider = try {
                future.get()
            } catch (e: Exception) {
                showMessage(getString(R.string.failed, e.message ?: "no camera"))
                return@addListener
            }
            val preview = Preview.Builder().build()
            preview.setSurfaceProvider(previewView.surfaceProvider)
            // Small frames are enough for a 96-224 px model and keep the RGB conversion cheap.
            val resolution = ResolutionSelector.Builder()
                .setResolutionStrategy(
                    ResolutionStrategy(Size(640, 480), ResolutionStrategy.FALLBACK_RULE_CLOSEST_HIGHER_THEN_LOWER),
                )
                .build()
            val analysis = ImageAnalysis.Builder()
                .setResolutionSelector(resolution)
                .setBackpressureStrategy(ImageAnalysis.STRATEGY_KEEP_ONLY_LATEST)
                .setOutputImageFormat(ImageAnalysis.OUTPUT_IMAGE_FORMAT_RGBA_8888)
                .build()
            analysis.setAnalyzer(worker, a)
            try {
                provider.unbindAll()
                provider.bindToLifecycle(this, CameraSelector.DEFAULT_BACK_CAMERA, preview, analysis)
            } catch (e: Exception) {
                showMessage(getString(R.string.failed, e.message ?: "cannot open the camera"))
            }
        }, ContextCompat.getMainExecutor(this))
    }

    // ---------------------------------------------------------------- worker thread only
    private fun useGpu(on: Boolean) {
        val model = bundled ?: return
        val a = analyzer ?: return
        val c = cpu ?: return
        if (!on) {
            a.runner = c
            gpu?.close()
            gpu = null
            return
        }
        try {
            val g = GpuRunner.forModelOf(c, assets, model.contract)
            gpu = g
            a.runner = g
        } catch (e: Exception) {
            Log.w(TAG, "GPU not available", e)
            runOnUiThread {
                gpuSwitch.isChecked = false
                timingView.text = getString(R.string.gpu_unavailable, e.message ?: e.javaClass.simpleName)
            }
        }
    }

    private fun setThreads(n: Int) {
        val model = bundled ?: return
        val a = analyzer ?: return
        val old = cpu
        val fresh = CpuRunner(model.model, model.contract, n)
        cpu = fresh
        threads = n
        if (gpu == null) a.runner = fresh
        old?.close()
    }

    // ---------------------------------------------------------------- UI
    private fun showResult(r: FrameResult) = runOnUiThread {
        for ((i, view) in topViews.withIndex()) {
            val p = r.top.getOrNull(i)
            view.text = when {
                p == null -> getString(R.string.no_prediction)
                r.probabilities -> getString(R.string.prediction, i + 1, p.label, p.score * 100f)
                else -> "${i + 1}. ${p.label}  ${"%.3f".format(p.score)}"
            }
        }
        val c = bundled?.contract
        val input = if (c == null) "" else "${c.inputWidth}x${c.inputHeight} ${c.inputDtype.id}"
        timingView.text = getString(R.string.timing, r.backend, r.inferenceMs, r.preprocessMs, input)
    }

    private fun showMessage(text: String) {
        messageView.text = text
        messageView.visibility = View.VISIBLE
    }

    override fun onDestroy() {
        super.onDestroy()
        worker.execute {
            analyzer?.runner = null
            gpu?.close()
            cpu?.close()
            gpu = null
            cpu = null
        }
        worker.shutdown()
    }

    companion object {
        private const val TAG = "edgecnn"
        private const val DEFAULT_THREADS = 4
        private val THREAD_CHOICES = listOf(1, 2, 4, 8)
    }
}
