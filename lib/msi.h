/* msi: see issue */
