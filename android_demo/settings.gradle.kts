pluginManagement {
    repositories {
        google()
        mavenCentral()
        gradlePluginPortal()
    }
}

dependencyResolutionManagement {
    repositoriesMode.set(RepositoriesMode.FAIL_ON_PROJECT_REPOS)
    repositories {
        google() // AndroidX, CameraX and LiteRT (com.google.ai.edge.litert) live on Google's Maven
        mavenCentral()
    }
}

rootProject.name = "edgecnn-demo"
include(":app")
