cmake_minimum_required(VERSION 3.20)  # IN_LIST and string(JSON)
# Runs rrh-bench --quick --json at tiny sizes; fails unless it exits 0 and prints one JSON
# object per line with the keys every figure must have, for each of the five scenarios.
execute_process(
  COMMAND ${BENCH} --quick --json --ingest-events 20000 --scale-agents 100 1000
          --scale-heartbeats 50 --latency-samples 100 --background-rate 20000
          --detection-nodes 2 --detection-settle-s 1 --storm-agents 500 --storm-burst 100
  OUTPUT_VARIABLE output
  RESULT_VARIABLE exit_code
  TIMEOUT 170)
if(NOT exit_code EQUAL 0)
  message(FATAL_ERROR "rrh-bench exited with ${exit_code}:\n${output}")
endif()
string(REPLACE "\n" ";" lines "${output}")
set(scenarios_seen "")
foreach(line IN LISTS lines)
  if(line STREQUAL "")
    continue()
  endif()
  foreach(key scenario value baseline ratio unit target met)
    string(JSON ignored ERROR_VARIABLE failure GET "${line}" ${key})
    if(failure)
      message(FATAL_ERROR "line without '${key}': ${line}\n${failure}")
    endif()
  endforeach()
  string(JSON scenario GET "${line}" scenario)
  string(REGEX REPLACE "\\..*" "" family "${scenario}")
  list(APPEND scenarios_seen ${family})
endforeach()
foreach(family ingest scale latency detection storm)
  if(NOT family IN_LIST scenarios_seen)
    message(FATAL_ERROR "no figure of scenario '${family}':\n${output}")
  endif()
endforeach()
message(STATUS "rrh-bench smoke: every scenario printed well-formed figures")
