# rrh_target_defaults(target): warnings and sanitizer flags shared by every rrh target.
add_library(rrh_build_flags INTERFACE)
target_compile_options(rrh_build_flags INTERFACE -Wall -Wextra -Wpedantic -Wshadow)
if(RRH_SANITIZE)
  target_compile_options(rrh_build_flags INTERFACE -fsanitize=address,undefined
                         -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
  target_link_options(rrh_build_flags INTERFACE -fsanitize=address,undefined)
endif()

function(rrh_target_defaults target)
  target_link_libraries(${target} PRIVATE $<BUILD_INTERFACE:rrh_build_flags>)
endfunction()
