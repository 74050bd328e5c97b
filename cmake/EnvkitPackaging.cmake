# The Debian package: `cpack -G DEB` in the build directory after a build gives
# envkit_<version>_<arch>.deb with every command, its man page and its bash completion,
# under /usr. Its Depends line comes from dpkg-shlibdeps: the libraries the commands link.
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME envkit)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_VENDOR envkit)
set(CPACK_PACKAGE_CONTACT "envkit maintainers <envkit@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
    "small Unix-style commands that stand up and exercise small distributed environments")
set(CPACK_PACKAGE_DESCRIPTION
    "sensor-push, db-backup, proxy-check and the other envkit commands: weather readings to any sink, verified database backups, protocol-aware health checks.")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION utils)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "man-db, bash-completion")
include(CPack)
